/*
 * A stand-in for XRT's libxrt_coreutil.so, compiled by the runtime_xrt tests: the subset of
 * XRT's C API the kvpq runtime calls, on buffers in host memory.
 *
 * Every buffer has a host copy (xrtBOWrite, xrtBORead) and a device copy (what a run sees),
 * moved only by xrtBOSync, so a host that forgets a sync reads or sends stale bytes. Runs
 * queue in start order on one compute unit and execute, through the handler the test
 * registers, when a run is waited for. The call sequence is checked as it goes: handles
 * valid and of the right kind, sizes inside buffers, every argument set before a start,
 * buffers synced to the device before a start and from it before a read, nothing touched
 * or freed while a run that uses it is in flight, handles released in order. Each breach
 * is counted and logged for the test to read (fake_xrt_violations, fake_xrt_log).
 *
 * Not thread safe: one device drives it from one thread. Each test compiles its own copy,
 * so tests running side by side share no state.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kernel has 4 + engines x stripes arguments; its masters map one HBM pseudo-channel
 * each, 32 at most. fake_xrt_max_args tells the test, which refuses a larger kernel. */
#define MAX_ARGS 40
#define MAX_QUEUE 4096
#define ERT_CMD_STATE_COMPLETED 4
#define ERT_CMD_STATE_ERROR 5
#define ERT_CMD_STATE_ABORT 6

enum { DEVICE = 0x44455631, KERNEL = 0x4b524e31, BO = 0x424f3031, RUN = 0x52554e31, DEAD = 0xdeadbeef };

/* What the run handler sees of each argument: a buffer's device copy, or a scalar. */
typedef struct fake_arg {
    uint8_t *data;
    uint64_t size;
    uint64_t value;
    int32_t is_buffer;
    int32_t group;
} fake_arg;

/* Returns the ert_cmd_state the run ends in. */
typedef int (*fake_run_handler)(void *user, const fake_arg *args, int nargs);

struct device {
    uint32_t magic;
    int loaded;
    unsigned char uuid[16];
    long kernels, bos;
};

struct kernel {
    uint32_t magic;
    struct device *dev;
    long runs;
};

struct bo {
    uint32_t magic;
    struct device *dev;
    size_t size;
    uint32_t group;
    uint8_t *host, *mem;
    size_t dirty_lo, dirty_hi; /* host bytes written and not yet synced to the device */
    size_t stale_lo, stale_hi; /* device bytes a run wrote and not yet synced back */
    long in_flight;            /* started, not yet waited runs using it */
};

struct run {
    uint32_t magic;
    struct kernel *k;
    int set[MAX_ARGS];
    struct bo *bo[MAX_ARGS];
    unsigned value[MAX_ARGS];
    int pending;
    int state;
};

static struct {
    char name[256];
    int nargs;
    int is_buffer[MAX_ARGS];
    int group[MAX_ARGS];
    uint32_t offset[MAX_ARGS];
} iface;

static fake_run_handler handler;
static void *handler_user;
static long live_handles;
static int violations;
static char log_text[16384];
static struct run *queue[MAX_QUEUE];
static int queue_len, in_flight, max_in_flight;

static struct {
    char call[64];
    long skip;
    long long value;
    int armed;
} inject;

static struct {
    char call[64];
    long count;
} counters[64];

/* Records a breach of the call sequence. */
static void violation(const char *fmt, ...)
{
    violations++;
    size_t used = strlen(log_text);
    if (used + 2 >= sizeof log_text)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log_text + used, sizeof log_text - used - 1, fmt, ap);
    va_end(ap);
    used = strlen(log_text);
    log_text[used] = '\n';
    log_text[used + 1] = 0;
}

/* Counts a call of `call`; true when an injected failure fires now (its value in *value). */
static int called(const char *call, long long *value)
{
    for (int i = 0; i < 64; i++) {
        if (counters[i].call[0] == 0) {
            snprintf(counters[i].call, sizeof counters[i].call, "%s", call);
        }
        if (strcmp(counters[i].call, call) == 0) {
            counters[i].count++;
            break;
        }
    }
    if (inject.armed && strcmp(inject.call, call) == 0 && inject.skip-- == 0) {
        inject.armed = 0;
        *value = inject.value;
        return 1;
    }
    return 0;
}

/* `h` when it is a live handle of kind `magic` (every handle struct starts with its magic),
 * else NULL and a breach. */
static void *live(void *h, uint32_t magic, const char *call)
{
    if (!h || *(const uint32_t *)h != magic) {
        const char *kind = magic == DEVICE ? "device" : magic == KERNEL ? "kernel"
                         : magic == BO     ? "buffer" : "run";
        violation("%s: %p is not an open %s", call, h, kind);
        return NULL;
    }
    return h;
}

#define as_device(h, call) ((struct device *)live((h), DEVICE, (call)))
#define as_kernel(h, call) ((struct kernel *)live((h), KERNEL, (call)))
#define as_bo(h, call) ((struct bo *)live((h), BO, (call)))
#define as_run(h, call) ((struct run *)live((h), RUN, (call)))

/* Whether [off, off + size) lies inside a buffer of `total` bytes (and is not empty). */
static int in_range(const char *call, size_t total, size_t size, size_t off)
{
    if (size == 0 || off > total || size > total - off) {
        violation("%s: %zu bytes at offset %zu of a %zu-byte buffer", call, size, off, total);
        return 0;
    }
    return 1;
}

/* ---- the test's side ---- */

void fake_xrt_configure(const char *kernel, int nargs, const int *is_buffer, const int *group,
                        const uint32_t *offset)
{
    snprintf(iface.name, sizeof iface.name, "%s", kernel);
    iface.nargs = nargs < MAX_ARGS ? nargs : MAX_ARGS;
    for (int i = 0; i < iface.nargs; i++) {
        iface.is_buffer[i] = is_buffer[i];
        iface.group[i] = group[i];
        iface.offset[i] = offset[i];
    }
}

void fake_xrt_set_run_handler(fake_run_handler h, void *user)
{
    handler = h;
    handler_user = user;
}

/* The next call of `call` after `skip` more fails, returning `value` (NULL for handles). */
void fake_xrt_inject(const char *call, long skip, long long value)
{
    snprintf(inject.call, sizeof inject.call, "%s", call);
    inject.skip = skip;
    inject.value = value;
    inject.armed = 1;
}

/* Calls of `call` so far; every call when `call` is NULL. */
long fake_xrt_calls(const char *call)
{
    long n = 0;
    for (int i = 0; i < 64 && counters[i].call[0]; i++)
        if (!call || strcmp(counters[i].call, call) == 0)
            n += counters[i].count;
    return n;
}

int fake_xrt_max_args(void) { return MAX_ARGS; }
int fake_xrt_violations(void) { return violations; }
const char *fake_xrt_log(void) { return log_text; }
long fake_xrt_live_handles(void) { return live_handles; }
int fake_xrt_max_in_flight(void) { return max_in_flight; }

/* For the handler: a breach it found (a buffer too small for what the kernel reads). */
void fake_xrt_report(const char *what) { violation("run handler: %s", what); }

/* ---- xrt_device.h ---- */

void *xrtDeviceOpen(unsigned int index)
{
    long long v;
    if (called("xrtDeviceOpen", &v) || index != 0) {
        errno = ENODEV;
        return NULL;
    }
    struct device *d = calloc(1, sizeof *d);
    d->magic = DEVICE;
    live_handles++;
    return d;
}

int xrtDeviceClose(void *h)
{
    long long v;
    called("xrtDeviceClose", &v);
    struct device *d = as_device(h, "xrtDeviceClose");
    if (!d)
        return -EINVAL;
    if (d->kernels || d->bos)
        violation("xrtDeviceClose: %ld kernels and %ld buffers still open", d->kernels, d->bos);
    d->magic = DEAD; /* kept allocated so a second close is seen */
    live_handles--;
    return 0;
}

int xrtDeviceLoadXclbinFile(void *h, const char *path)
{
    long long v;
    if (called("xrtDeviceLoadXclbinFile", &v))
        return (int)v;
    struct device *d = as_device(h, "xrtDeviceLoadXclbinFile");
    if (!d)
        return -EINVAL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    fclose(f);
    /* The uuid: a hash of the path, so another xclbin has another uuid. */
    uint64_t x = 1469598103934665603ull;
    for (const char *p = path; *p; p++)
        x = (x ^ (unsigned char)*p) * 1099511628211ull;
    for (int i = 0; i < 16; i++)
        d->uuid[i] = (unsigned char)(x >> (8 * (i % 8))) ^ (unsigned char)i;
    d->loaded = 1;
    return 0;
}

int xrtDeviceGetXclbinUUID(void *h, unsigned char *out)
{
    long long v;
    if (called("xrtDeviceGetXclbinUUID", &v))
        return (int)v;
    struct device *d = as_device(h, "xrtDeviceGetXclbinUUID");
    if (!d)
        return -EINVAL;
    if (!d->loaded) {
        violation("xrtDeviceGetXclbinUUID: no xclbin loaded");
        return -EINVAL;
    }
    memcpy(out, d->uuid, 16);
    return 0;
}

/* ---- xrt_kernel.h ---- */

void *xrtPLKernelOpen(void *h, const unsigned char *uuid, const char *name)
{
    long long v;
    if (called("xrtPLKernelOpen", &v))
        return NULL;
    struct device *d = as_device(h, "xrtPLKernelOpen");
    if (!d)
        return NULL;
    if (!d->loaded || memcmp(uuid, d->uuid, 16) != 0) {
        violation("xrtPLKernelOpen: uuid is not the loaded xclbin's");
        return NULL;
    }
    if (strcmp(name, iface.name) != 0) {
        errno = ENOENT; /* not a breach: the xclbin just has no such kernel */
        return NULL;
    }
    struct kernel *k = calloc(1, sizeof *k);
    k->magic = KERNEL;
    k->dev = d;
    d->kernels++;
    live_handles++;
    return k;
}

int xrtKernelClose(void *h)
{
    long long v;
    called("xrtKernelClose", &v);
    struct kernel *k = as_kernel(h, "xrtKernelClose");
    if (!k)
        return -1;
    if (k->runs)
        violation("xrtKernelClose: %ld runs still open", k->runs);
    k->magic = DEAD;
    k->dev->kernels--;
    live_handles--;
    return 0;
}

int xrtKernelArgGroupId(void *h, int argno)
{
    long long v;
    if (called("xrtKernelArgGroupId", &v))
        return (int)v;
    if (!as_kernel(h, "xrtKernelArgGroupId"))
        return -EINVAL;
    if (argno < 0 || argno >= iface.nargs || !iface.is_buffer[argno]) {
        violation("xrtKernelArgGroupId: argument %d is not a buffer", argno);
        return -EINVAL;
    }
    return iface.group[argno];
}

uint32_t xrtKernelArgOffset(void *h, int argno)
{
    long long v;
    if (called("xrtKernelArgOffset", &v))
        return (uint32_t)v;
    if (!as_kernel(h, "xrtKernelArgOffset"))
        return 0;
    if (argno < 0 || argno >= iface.nargs) {
        violation("xrtKernelArgOffset: no argument %d", argno);
        return 0;
    }
    return iface.offset[argno];
}

void *xrtRunOpen(void *h)
{
    long long v;
    if (called("xrtRunOpen", &v))
        return NULL;
    struct kernel *k = as_kernel(h, "xrtRunOpen");
    if (!k)
        return NULL;
    struct run *r = calloc(1, sizeof *r);
    r->magic = RUN;
    r->k = k;
    k->runs++;
    live_handles++;
    return r;
}

int xrtRunSetArg(void *h, int index, ...)
{
    long long v;
    if (called("xrtRunSetArg", &v))
        return (int)v;
    struct run *r = as_run(h, "xrtRunSetArg");
    if (!r)
        return -1;
    if (index < 0 || index >= iface.nargs) {
        violation("xrtRunSetArg: no argument %d", index);
        return -1;
    }
    if (r->pending) {
        violation("xrtRunSetArg(%d): the run is in flight", index);
        return -1;
    }
    va_list ap;
    va_start(ap, index);
    if (iface.is_buffer[index]) {
        struct bo *b = as_bo(va_arg(ap, void *), "xrtRunSetArg");
        va_end(ap);
        if (!b)
            return -1;
        if ((int)b->group != iface.group[index])
            violation("xrtRunSetArg(%d): buffer of group %u, the argument is in group %d", index,
                      b->group, iface.group[index]);
        r->bo[index] = b;
    } else {
        r->value[index] = va_arg(ap, unsigned int);
        va_end(ap);
    }
    r->set[index] = 1;
    return 0;
}

int xrtRunStart(void *h)
{
    long long v;
    if (called("xrtRunStart", &v))
        return (int)v;
    struct run *r = as_run(h, "xrtRunStart");
    if (!r)
        return -1;
    if (r->pending) {
        violation("xrtRunStart: the run is already in flight");
        return -1;
    }
    for (int i = 0; i < iface.nargs; i++) {
        if (!r->set[i]) {
            violation("xrtRunStart: argument %d was never set", i);
            return -1;
        }
        if (!iface.is_buffer[i])
            continue;
        if (r->bo[i]->magic != BO) {
            violation("xrtRunStart: argument %d's buffer was freed", i);
            return -1;
        }
        if (r->bo[i]->dirty_hi > r->bo[i]->dirty_lo)
            violation("xrtRunStart: argument %d: bytes [%zu, %zu) written but not synced to "
                      "the device", i, r->bo[i]->dirty_lo, r->bo[i]->dirty_hi);
    }
    if (queue_len == MAX_QUEUE) {
        violation("xrtRunStart: more than %d runs in flight", MAX_QUEUE);
        return -1;
    }
    queue[queue_len++] = r;
    r->pending = 1;
    for (int i = 0; i < iface.nargs; i++)
        if (iface.is_buffer[i])
            r->bo[i]->in_flight++;
    if (++in_flight > max_in_flight)
        max_in_flight = in_flight;
    return 0;
}

/* Executes the oldest queued run through the handler. */
static void execute_next(void)
{
    struct run *r = queue[0];
    memmove(queue, queue + 1, (size_t)(queue_len - 1) * sizeof queue[0]);
    queue_len--;
    fake_arg args[MAX_ARGS];
    uint8_t *before[MAX_ARGS] = {0};
    for (int i = 0; i < iface.nargs; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].is_buffer = iface.is_buffer[i];
        if (iface.is_buffer[i]) {
            struct bo *b = r->bo[i];
            args[i].data = b->mem;
            args[i].size = b->size;
            args[i].group = (int32_t)b->group;
            before[i] = malloc(b->size);
            memcpy(before[i], b->mem, b->size);
        } else {
            args[i].value = r->value[i];
        }
    }
    if (handler) {
        r->state = handler(handler_user, args, iface.nargs);
    } else {
        violation("a run executed with no handler registered");
        r->state = ERT_CMD_STATE_ERROR;
    }
    for (int i = 0; i < iface.nargs; i++) {
        if (!iface.is_buffer[i])
            continue;
        struct bo *b = r->bo[i];
        /* What the run wrote is stale on the host until synced back. */
        for (size_t j = 0; j < b->size; j++) {
            if (b->mem[j] != before[i][j]) {
                if (b->stale_hi <= b->stale_lo)
                    b->stale_lo = b->stale_hi = j;
                if (j < b->stale_lo)
                    b->stale_lo = j;
                if (j + 1 > b->stale_hi)
                    b->stale_hi = j + 1;
            }
        }
        free(before[i]);
        b->in_flight--;
    }
    r->pending = 0;
    in_flight--;
}

int xrtRunWait(void *h)
{
    long long v;
    int fail = called("xrtRunWait", &v);
    struct run *r = as_run(h, "xrtRunWait");
    if (!r)
        return ERT_CMD_STATE_ABORT;
    if (!r->pending) {
        violation("xrtRunWait: the run was not started");
        return ERT_CMD_STATE_ABORT;
    }
    /* One compute unit: runs end in start order. */
    while (r->pending && queue_len > 0)
        execute_next();
    return fail ? (int)v : r->state;
}

int xrtRunClose(void *h)
{
    long long v;
    called("xrtRunClose", &v);
    struct run *r = as_run(h, "xrtRunClose");
    if (!r)
        return -1;
    if (r->pending)
        violation("xrtRunClose: the run is in flight");
    r->magic = DEAD;
    r->k->runs--;
    live_handles--;
    return 0;
}

/* ---- xrt_bo.h ---- */

void *xrtBOAlloc(void *h, size_t size, uint64_t flags, uint32_t group)
{
    long long v;
    if (called("xrtBOAlloc", &v))
        return NULL;
    struct device *d = as_device(h, "xrtBOAlloc");
    if (!d)
        return NULL;
    int known = 0;
    for (int i = 0; i < iface.nargs; i++)
        known |= iface.is_buffer[i] && iface.group[i] == (int)group;
    if (!known)
        violation("xrtBOAlloc: group %u is no buffer argument's", group);
    if (flags != 0)
        violation("xrtBOAlloc: flags %#llx, expected XRT_BO_FLAGS_NONE", (unsigned long long)flags);
    if (size == 0) {
        violation("xrtBOAlloc: 0 bytes");
        return NULL;
    }
    struct bo *b = calloc(1, sizeof *b);
    b->magic = BO;
    b->dev = d;
    b->size = size;
    b->group = group;
    b->host = malloc(size);
    b->mem = malloc(size);
    /* Different poison on each side: a missing sync shows as wrong bytes too. */
    memset(b->host, 0x5a, size);
    memset(b->mem, 0xa5, size);
    d->bos++;
    live_handles++;
    return b;
}

int xrtBOFree(void *h)
{
    long long v;
    called("xrtBOFree", &v);
    struct bo *b = as_bo(h, "xrtBOFree");
    if (!b)
        return -EINVAL;
    if (b->in_flight)
        violation("xrtBOFree: %ld runs in flight use the buffer", b->in_flight);
    b->magic = DEAD;
    free(b->host);
    free(b->mem);
    b->host = b->mem = NULL;
    b->dev->bos--;
    live_handles--;
    return 0;
}

int xrtBOWrite(void *h, const void *src, size_t size, size_t seek)
{
    long long v;
    if (called("xrtBOWrite", &v))
        return (int)v;
    struct bo *b = as_bo(h, "xrtBOWrite");
    if (!b || !in_range("xrtBOWrite", b->size, size, seek))
        return -EINVAL;
    if (b->in_flight)
        violation("xrtBOWrite: %ld runs in flight use the buffer", b->in_flight);
    memcpy(b->host + seek, src, size);
    if (b->dirty_hi <= b->dirty_lo)
        b->dirty_lo = b->dirty_hi = seek;
    if (seek < b->dirty_lo)
        b->dirty_lo = seek;
    if (seek + size > b->dirty_hi)
        b->dirty_hi = seek + size;
    return 0;
}

int xrtBOSync(void *h, int dir, size_t size, size_t offset)
{
    long long v;
    if (called("xrtBOSync", &v))
        return (int)v;
    struct bo *b = as_bo(h, "xrtBOSync");
    if (!b || !in_range("xrtBOSync", b->size, size, offset))
        return -EINVAL;
    if (b->in_flight)
        violation("xrtBOSync(%d): %ld runs in flight use the buffer", dir, b->in_flight);
    size_t end = offset + size;
    if (dir == 0) {
        memcpy(b->mem + offset, b->host + offset, size);
        if (offset <= b->dirty_lo && end >= b->dirty_hi)
            b->dirty_lo = b->dirty_hi = 0;
    } else if (dir == 1) {
        memcpy(b->host + offset, b->mem + offset, size);
        if (offset <= b->stale_lo && end >= b->stale_hi)
            b->stale_lo = b->stale_hi = 0;
    } else {
        violation("xrtBOSync: direction %d", dir);
        return -EINVAL;
    }
    return 0;
}

int xrtBORead(void *h, void *dst, size_t size, size_t skip)
{
    long long v;
    if (called("xrtBORead", &v))
        return (int)v;
    struct bo *b = as_bo(h, "xrtBORead");
    if (!b || !in_range("xrtBORead", b->size, size, skip))
        return -EINVAL;
    if (b->in_flight)
        violation("xrtBORead: %ld runs in flight use the buffer", b->in_flight);
    if (b->stale_hi > b->stale_lo && skip < b->stale_hi && skip + size > b->stale_lo)
        violation("xrtBORead: bytes [%zu, %zu) were written by a run and not synced from the "
                  "device", b->stale_lo, b->stale_hi);
    memcpy(dst, b->host + skip, size);
    return 0;
}
