/*
 * mapfuzz kernel oracle: replays a trace of mapfuzz core operations on the running Linux
 * kernel and prints, after every step, the outcome and what user space can observe —
 * per process the VMAs of /proc/<pid>/maps inside the emulated region, and per present or
 * swapped page (or uffd-wp marker) its value and its /proc/<pid>/pagemap bits.
 *
 * Besides the memory calls it replays the introspection operations: read(2) of
 * /proc/<pid>/pagemap, the PAGEMAP_SCAN ioctl (Linux 6.7), a write to
 * /proc/<pid>/clear_refs, userfaultfd registration in asynchronous write-protect mode, and
 * readdir of /proc/<pid>/map_files/. Each is performed by the emulated process that the
 * trace names, with its own credentials.
 *
 * One real process per emulated process. The controller (this program's first process)
 * forks a fresh child for `spawn`; `fork` is a real fork() inside the emulated process.
 * Every process is driven over a pair of pipes (command, reply) from a pool made before
 * the first spawn, so a forked child finds its own pair already open.
 *
 * Addresses: model page `a` is the real address REGION_BASE + a * 4096, so traces are
 * position-independent; the model's edges are the kernel's (real_at): below its
 * mmap_min_addr (1 page) a model address is the real low address, at or above its TASK_SIZE
 * (the region's end) it is the real TASK_SIZE (probed at start-up) and up, and a negative one
 * is the top of the address space, as a negative pointer is. A non-fixed mmap is replayed as MAP_FIXED_NOREPLACE at the
 * address the model chose (the driver writes placement 3); get_unmapped_area's choice is
 * ASLR policy and not under test. Likewise a moving mremap arrives as MREMAP_FIXED at the
 * model's destination.
 *
 * Input: one operation a line, whitespace separated (see parse_and_run for the fields).
 * Output: one JSON object a line: a header `{"oracle":1,...,"caps":{...}}` (what this kernel
 * supports: "ok" or the errno of the probe), then per step
 * `{"step":N,"outcome":{...},"procs":[{"pid":P,"vmas":[[start,end,"perms","backing",pgoff]],
 *  "pages":[[addr,value,flags]]}]}` where flags = present|swapped<<1|file<<2|exclusive<<3|
 * softdirty<<4|uffdwp<<5|marker<<6 (a marker is a uffd-wp PTE marker, shown by pagemap as a
 * swap entry of type 31). An outcome may carry "values" (pagemap entries, scan regions,
 * map_files names), and a PAGEMAP_SCAN step "emptyPtes": the ranges of the target that
 * are empty entries of existing page tables just before the scan (see probe_empty_ptes).
 *
 * C11, libc and Linux headers only. Built with `cc -O1 -std=c11 -o oracle oracle.c`.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>

/* PAGEMAP_SCAN (include/uapi/linux/fs.h, Linux 6.7), for headers older than the kernel. */
#ifndef PAGEMAP_SCAN
struct page_region {
  __u64 start;
  __u64 end;
  __u64 categories;
};
struct pm_scan_arg {
  __u64 size;
  __u64 flags;
  __u64 start;
  __u64 end;
  __u64 walk_end;
  __u64 vec;
  __u64 vec_len;
  __u64 max_pages;
  __u64 category_inverted;
  __u64 category_mask;
  __u64 category_anyof_mask;
  __u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif
#ifndef PAGE_IS_WRITTEN
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef SYS_userfaultfd
#define SYS_userfaultfd 323
#endif

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif
#ifndef MADV_KEEPONFORK
#define MADV_KEEPONFORK 19
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#ifndef MREMAP_FIXED
#define MREMAP_FIXED 2
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define PAGE_BYTES 4096UL
#define REGION_BASE 0x200000000000UL
/* The region spans 2^20 pages (4 GiB): the model's taskSizePages for the oracle. */
#define REGION_PAGES (1UL << 20)
#define REGION_BYTES (REGION_PAGES * PAGE_BYTES)
/* The model's vm.mmap_min_addr (oracleConfig's mmapMinAddrPages), the machine's default too. */
#define MIN_ADDR_BYTES PAGE_BYTES
#define PROCS_MAX 64
#define FILES_MAX 64
#define LINE_BYTES_MAX 512
#define PAGES_PER_VMA_MAX 4096
#define IDLE_SECONDS_MAX 20
/* The most values one outcome carries: walk_end and 65536 scan regions, or 4096 pagemap entries. */
#define VALUES_MAX (1 + 3 * 65536)
/* A pagemap swap entry of this type is a PTE marker (SWP_PTE_MARKER): bits 0-4 of the entry. */
#define SWP_TYPE_MARKER 31

enum cmd_kind {
  C_MMAP = 1, C_MUNMAP, C_MPROTECT, C_MREMAP, C_MADVISE, C_READ, C_WRITE, C_FORK, C_EXIT,
  C_PROC_MEM_READ, C_PROC_MEM_WRITE, C_PVM_READ, C_PVM_WRITE, C_SET_DUMPABLE,
  C_PAGEMAP_READ, C_PAGEMAP_SCAN, C_CLEAR_REFS, C_UFFD_REGISTER_WP, C_MAP_FILES_READDIR,
  C_MINCORE, C_MLOCK, C_MUNLOCK, C_MLOCKALL, C_MUNLOCKALL, C_MSYNC, C_VMSPLICE, C_PIPE_READ,
};

#define CMD_ARGS 16

struct cmd {
  int32_t kind;
  int64_t a[CMD_ARGS];
  char path[128];
};

enum outcome_kind { O_OK = 0, O_ERRNO = 1, O_SIGNAL = 2 };

struct reply {
  int32_t kind;
  int32_t nvalues; /* O_OK: how many values follow the reply on the pipe; -1: none (not even []) */
  int64_t value; /* O_OK: the value; O_ERRNO: errno; O_SIGNAL: signal number */
};

/* The values of the last reply: filled by the emulated process, then copied to the controller. */
static int64_t reply_values[VALUES_MAX];

struct proc {
  int running;
  pid_t real_pid;
  int pidfd;
};

static int cmd_pipe[PROCS_MAX + 1][2];
static int reply_pipe[PROCS_MAX + 1][2];
static struct proc procs[PROCS_MAX + 1];
static int next_pid = 1;
static int file_fd[FILES_MAX + 1];
static int next_file = 1;
static char tmpdir[256];
static int soft_dirty_supported;
/* Probe results: 0 when the call works here, else the errno it failed with. */
static int pagemap_scan_errno;
static int uffd_wp_async_errno;
/* Extra JSON fields of the current step (the empty-PTE probe of a PAGEMAP_SCAN). */
static char step_extra[1 << 16];

/* ---- small helpers ------------------------------------------------------------------- */

static void die(const char *what) {
  fprintf(stderr, "oracle: %s: %s\n", what, strerror(errno));
  exit(2);
}

static int read_full(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int write_full(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* TASK_SIZE of this process (probe_task_size): where the model's TASK_SIZE is put. */
static uintptr_t task_size_real = 0x7ffffffff000UL;

/*
 * A model address in bytes (page * 4096 + offset) as a real one. [mmap_min_addr, TASK_SIZE)
 * of the model is the region; below it the real low addresses, where the kernel's
 * mmap_min_addr applies as the model's does; from the model's TASK_SIZE up the kernel's
 * TASK_SIZE and up, so that an address the model calls beyond user space is beyond it here
 * too; a negative address wraps to the top of the address space as a negative pointer does.
 * A range that crosses one of these edges is not contiguous here (SIMPLIFICATIONS.md).
 */
static uintptr_t real_at(int64_t bytes) {
  if (bytes < (int64_t)MIN_ADDR_BYTES) return (uintptr_t)bytes;
  if (bytes < (int64_t)REGION_BYTES) return REGION_BASE + (uintptr_t)bytes;
  return task_size_real + (uintptr_t)(bytes - (int64_t)REGION_BYTES);
}

static uintptr_t real_addr(int64_t page) { return real_at(page * (int64_t)PAGE_BYTES); }

/*
 * The start of a range of `len` bytes from model byte address `bytes`: a
 * range of the region that runs past the model's TASK_SIZE runs past the kernel's, by as much
 * (so that each side refuses it as beyond user space); any other range starts at real_at.
 */
static uintptr_t real_span(int64_t bytes, int64_t len) {
  if (bytes >= (int64_t)MIN_ADDR_BYTES && bytes < (int64_t)REGION_BYTES && len > 0 && len > (int64_t)REGION_BYTES - bytes)
    return task_size_real - (uintptr_t)((int64_t)REGION_BYTES - bytes);
  return real_at(bytes);
}


/* TASK_SIZE: the first page-aligned address that MAP_FIXED_NOREPLACE refuses with ENOMEM (one page probed at a time, unmapped at once). */
static uintptr_t probe_task_size(void) {
  uintptr_t lo = 1UL << 40, hi = 1UL << 57;
  while (hi - lo > PAGE_BYTES) {
    uintptr_t mid = (lo + (hi - lo) / 2) & ~(PAGE_BYTES - 1);
    void *p = mmap((void *)mid, PAGE_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != MAP_FAILED) {
      munmap(p, PAGE_BYTES);
      lo = mid;
    } else if (errno == EEXIST) lo = mid;
    else hi = mid;
  }
  return hi;
}

/* A real address as a model page: real_at's inverse (the low addresses below mmap_min_addr, the region, TASK_SIZE and up). */
static int64_t model_page(uintptr_t addr) {
  if (addr <= MIN_ADDR_BYTES) return (int64_t)(addr / PAGE_BYTES); /* an end of the low part too */
  if (addr >= task_size_real) return (int64_t)((addr - task_size_real + REGION_BYTES) / PAGE_BYTES);
  return (int64_t)((int64_t)(addr - REGION_BASE) / (int64_t)PAGE_BYTES);
}

static const char *errno_name(int e) {
  switch (e) {
    case EPERM: return "EPERM"; case ENOENT: return "ENOENT"; case ESRCH: return "ESRCH"; case EINTR: return "EINTR";
    case EIO: return "EIO"; case ENXIO: return "ENXIO"; case E2BIG: return "E2BIG";
    case EBADF: return "EBADF"; case EAGAIN: return "EAGAIN"; case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES"; case EFAULT: return "EFAULT"; case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST"; case ENODEV: return "ENODEV"; case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE"; case ENOSPC: return "ENOSPC"; case ENOTTY: return "ENOTTY"; case EOVERFLOW: return "EOVERFLOW";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return NULL;
  }
}

static struct reply r_ok(int64_t v) { struct reply r = { O_OK, -1, v }; return r; }
static struct reply r_errno(int e) { struct reply r = { O_ERRNO, -1, e }; return r; }
static struct reply r_values(int64_t v, int n) { struct reply r = { O_OK, n, v }; return r; }

static void print_outcome(struct reply r) {
  if (r.kind == O_OK) {
    printf("{\"kind\":\"ok\",\"value\":%lld", (long long)r.value);
    if (r.nvalues >= 0) {
      printf(",\"values\":[");
      for (int i = 0; i < r.nvalues; i++) printf("%s%lld", i == 0 ? "" : ",", (long long)reply_values[i]);
      printf("]");
    }
    printf("}");
  } else if (r.kind == O_ERRNO) {
    const char *name = errno_name((int)r.value);
    if (name != NULL) printf("{\"kind\":\"errno\",\"errno\":\"%s\"}", name);
    else printf("{\"kind\":\"errno\",\"errno\":\"E#%lld\"}", (long long)r.value);
  } else {
    printf("{\"kind\":\"signal\",\"signal\":\"%s\"}", r.value == SIGBUS ? "SIGBUS" : r.value == SIGSEGV ? "SIGSEGV" : "SIG?");
  }
}

/* ---- the emulated process ------------------------------------------------------------ */

static sigjmp_buf fault_jmp;
static volatile sig_atomic_t fault_armed;

static void on_fault(int sig) {
  if (fault_armed) siglongjmp(fault_jmp, sig);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* A user load or store of one 32-bit value; a SIGSEGV or SIGBUS becomes the outcome. */
static struct reply user_access(uintptr_t addr, int write, uint32_t value) {
  int sig = sigsetjmp(fault_jmp, 1);
  if (sig != 0) {
    fault_armed = 0;
    struct reply r = { O_SIGNAL, -1, sig };
    return r;
  }
  fault_armed = 1;
  uint32_t got = 0;
  if (write) *(volatile uint32_t *)addr = value;
  else got = *(volatile uint32_t *)addr;
  fault_armed = 0;
  return r_ok(write ? 0 : got);
}

static struct reply do_mmap(const struct cmd *c) {
  /* a: addr, len, prot, shared, placement (0 hint, 1 fixed, 2 noreplace, 3 placed), file, offset, rw, MAP_LOCKED; addr, len and offset in bytes */
  int flags = (c->a[3] ? MAP_SHARED : MAP_PRIVATE) | (c->a[8] ? MAP_LOCKED : 0);
  int placement = (int)c->a[4];
  if (placement == 1) flags |= MAP_FIXED;
  if (placement == 2 || placement == 3) flags |= MAP_FIXED_NOREPLACE;
  int fd = -1;
  if (c->a[5] < 0) {
    flags |= MAP_ANONYMOUS;
  } else {
    fd = open(c->path, c->a[7] ? O_RDWR : O_RDONLY);
    if (fd < 0) return r_errno(errno);
  }
  void *want = (c->a[0] == 0 && placement == 0) ? NULL : (void *)real_span(c->a[0], c->a[1]);
  void *got = mmap(want, (size_t)c->a[1], (int)c->a[2], flags, fd, (off_t)c->a[6]);
  int e = errno;
  if (fd >= 0) close(fd);
  if (got == MAP_FAILED) return r_errno(e);
  if ((flags & MAP_FIXED_NOREPLACE) && got != want) {
    /* A kernel before 4.17 treats MAP_FIXED_NOREPLACE as a hint. */
    munmap(got, (size_t)c->a[1]);
    return r_errno(EEXIST);
  }
  return r_ok(model_page((uintptr_t)got));
}

static struct reply do_mremap(const struct cmd *c) {
  /* a: addr, old, new, maymove, fixed, newAddr, dontunmap; addresses and lengths in bytes */
  int flags = (c->a[3] ? MREMAP_MAYMOVE : 0) | (c->a[4] ? MREMAP_FIXED : 0) | (c->a[6] ? MREMAP_DONTUNMAP : 0);
  void *got = mremap((void *)real_at(c->a[0]), (size_t)c->a[1], (size_t)c->a[2],
                     flags, (void *)real_span(c->a[5], c->a[2]));
  if (got == MAP_FAILED) return r_errno(errno);
  return r_ok(model_page((uintptr_t)got));
}

static struct reply proc_mem(const struct cmd *c, int write) {
  /* a: target real pid, addr, value */
  char path[64];
  snprintf(path, sizeof path, "/proc/%lld/mem", (long long)c->a[0]);
  int fd = open(path, write ? O_WRONLY : O_RDONLY);
  if (fd < 0) return r_errno(errno);
  uint32_t v = (uint32_t)c->a[2];
  ssize_t n = write ? pwrite(fd, &v, 4, (off_t)real_addr(c->a[1])) : pread(fd, &v, 4, (off_t)real_addr(c->a[1]));
  int e = errno;
  close(fd);
  if (n < 0) return r_errno(e);
  if (n != 4) return r_errno(EIO);
  return r_ok(write ? 0 : v);
}

static struct reply process_vm(const struct cmd *c, int write) {
  uint32_t v = (uint32_t)c->a[2];
  struct iovec local = { &v, 4 };
  struct iovec remote = { (void *)real_addr(c->a[1]), 4 };
  ssize_t n = write ? process_vm_writev((pid_t)c->a[0], &local, 1, &remote, 1, 0)
                    : process_vm_readv((pid_t)c->a[0], &local, 1, &remote, 1, 0);
  if (n < 0) return r_errno(errno);
  if (n != 4) return r_errno(EFAULT);
  return r_ok(write ? 0 : v);
}

static int madvise_advice(int64_t code) {
  switch (code) {
    case 0: return MADV_DONTNEED;
    case 1: return MADV_PAGEOUT;
    case 2: return MADV_COLD;
    case 3: return MADV_DONTFORK;
    case 4: return MADV_DOFORK;
    case 5: return MADV_WILLNEED;
    case 6: return MADV_WIPEONFORK;
    case 7: return MADV_KEEPONFORK;
    case 8: return MADV_POPULATE_READ;
    case 9: return MADV_POPULATE_WRITE;
    case 10: return MADV_REMOVE;
    default: return MADV_FREE;
  }
}

static struct reply call_result(int rc) { return rc == 0 ? r_ok(0) : r_errno(errno); }

/*
 * mincore(addr, len) of the calling process, a byte address (from REGION_BASE) and a byte
 * length placed at the kernel's edges (real_span): the residency bit of each page, a partial
 * last page included, as values.
 */
static struct reply do_mincore(const struct cmd *c) {
  static unsigned char vec[4096];
  int64_t len = c->a[1], page = (int64_t)PAGE_BYTES;
  int64_t n = len < 0 ? 0 : len / page + (len % page > 0); /* a negative size_t: access_ok fails, ENOMEM */
  if (n > 4096) return r_errno(EINVAL); /* MINCORE_PAGES_MAX: the model's limit */
  if (mincore((void *)real_span(c->a[0], c->a[1]), (size_t)c->a[1], vec) != 0) return r_errno(errno);
  for (int64_t i = 0; i < n; i++) reply_values[i] = vec[i] & 1;
  return r_values(n, (int)n);
}

/*
 * msync(addr, len, flags) of the calling process, a byte address (from REGION_BASE) and a
 * byte length placed at the kernel's edges (real_span).
 */
static struct reply do_msync(const struct cmd *c) {
  return call_result(msync((void *)real_span(c->a[0], c->a[1]), (size_t)c->a[1], (int)c->a[2]));
}

/*
 * The pipes vmsplice filled (kernel-api/pipes.ts), by the model's id: [0] the read end, [1]
 * the write end, 0 for an id this process does not hold. A fork's child has a copy, as its
 * fd table is one; a spawned process starts from the controller's, which holds none.
 */
#define PIPES_MAX 512
#define PIPE_DEF_BUFFERS 16
static int pipe_fds[PIPES_MAX + 1][2];

static int pipe_held(int64_t id) { return id >= 1 && id <= PIPES_MAX && pipe_fds[id][1] > 0; }

/*
 * vmsplice(2) of one iovec (a page address, a length in pages) into pipe a[0] with
 * SPLICE_F_NONBLOCK (no SPLICE_F_GIFT); a[0] == 0: into a new pipe2(O_NONBLOCK), kept as
 * id a[3] (the model's) only when a page went in. The value is the pages spliced.
 */
static struct reply do_vmsplice(const struct cmd *c) {
  int fds[2];
  int made = c->a[0] == 0;
  if (!made) {
    if (!pipe_held(c->a[0])) return r_errno(EBADF);
    fds[0] = pipe_fds[c->a[0]][0];
    fds[1] = pipe_fds[c->a[0]][1];
  } else if (pipe2(fds, O_NONBLOCK) != 0) {
    return r_errno(errno);
  }
  struct iovec iov = { (void *)real_addr(c->a[1]), (size_t)c->a[2] * PAGE_BYTES };
  ssize_t n = vmsplice(fds[1], &iov, 1, SPLICE_F_NONBLOCK);
  int e = errno;
  if (made && n <= 0) {
    close(fds[0]);
    close(fds[1]);
  }
  if (n < 0) return r_errno(e);
  if (!made || n == 0) return r_ok(n / PAGE_BYTES);
  if (c->a[3] < 1 || c->a[3] > PIPES_MAX || pipe_fds[c->a[3]][1] > 0) {
    close(fds[0]);
    close(fds[1]);
    return r_errno(EMFILE);
  }
  pipe_fds[c->a[3]][0] = fds[0];
  pipe_fds[c->a[3]][1] = fds[1];
  reply_values[0] = c->a[3];
  return r_values(n / PAGE_BYTES, 1);
}

/* read(2) of up to a[1] pages from pipe a[0] (O_NONBLOCK): the value is the pages read, the values the first word of each. */
static struct reply do_pipe_read(const struct cmd *c) {
  static uint32_t buf[PIPE_DEF_BUFFERS * PAGE_BYTES / 4];
  if (!pipe_held(c->a[0])) return r_errno(EBADF);
  int64_t pages = c->a[1] > PIPE_DEF_BUFFERS ? PIPE_DEF_BUFFERS : c->a[1];
  ssize_t n = read(pipe_fds[c->a[0]][0], pages < 0 ? NULL : buf, pages < 0 ? (size_t)-1 : (size_t)pages * PAGE_BYTES);
  if (n < 0) return r_errno(errno);
  if (n == 0) return r_ok(0);
  int k = (int)(n / PAGE_BYTES);
  for (int i = 0; i < k; i++) reply_values[i] = buf[(size_t)i * PAGE_BYTES / 4];
  return r_values(k, k);
}

/*
 * mlock, mlock2(MLOCK_ONFAULT) and munlock of a byte address (from REGION_BASE) and a byte
 * length, placed at the kernel's edges (real_span); mlockall(flags) and munlockall.
 */
static struct reply do_mlock(const struct cmd *c) {
  void *at = (void *)real_span(c->a[0], c->a[1]);
  switch (c->kind) {
    case C_MUNLOCK: return call_result(munlock(at, (size_t)c->a[1]));
    case C_MLOCKALL: return call_result(mlockall((int)c->a[0]));
    case C_MUNLOCKALL: return call_result(munlockall());
    default:
      if (c->a[2]) return call_result((int)syscall(SYS_mlock2, at, (size_t)c->a[1], MLOCK_ONFAULT));
      return call_result(mlock(at, (size_t)c->a[1]));
  }
}

/* read(2) of /proc/<target>/pagemap: `count` entries from page `addr`; values are bits 55..63. */
static struct reply pagemap_read(const struct cmd *c) {
  /* a: target real pid, addr, count (clipped at the region's end, the model's TASK_SIZE) */
  static uint64_t entries[4096];
  char path[64];
  int64_t count = c->a[2];
  if (c->a[1] >= 0 && c->a[1] < (int64_t)REGION_PAGES && count > (int64_t)REGION_PAGES - c->a[1]) count = (int64_t)REGION_PAGES - c->a[1];
  if (count < 0 || count > 4096) return r_errno(EINVAL); /* PAGEMAP_READ_PAGES_MAX: the model's limit */
  snprintf(path, sizeof path, "/proc/%lld/pagemap", (long long)c->a[0]);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return r_errno(errno);
  ssize_t n = pread(fd, entries, (size_t)count * 8, (off_t)(real_addr(c->a[1]) / PAGE_BYTES * 8));
  int e = errno;
  close(fd);
  if (n < 0) return r_errno(e);
  int k = (int)(n / 8);
  for (int i = 0; i < k; i++) reply_values[i] = (int64_t)((entries[i] >> 55) & 0x1ff);
  return r_values(k, k);
}

/*
 * ioctl(PAGEMAP_SCAN) on /proc/<target>/pagemap. values: walk_end, then start, end and
 * categories of each region, in model pages.
 */
static struct reply pagemap_scan(const struct cmd *c) {
  /* a: target real pid, start and end (bytes from REGION_BASE), flags, max_pages, category_inverted,
   *    category_mask, category_anyof_mask, return_mask, vec_len, vec NULL, size */
  char path[64];
  snprintf(path, sizeof path, "/proc/%lld/pagemap", (long long)c->a[0]);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return r_errno(errno);
  uint64_t vec_len = (uint64_t)c->a[9];
  struct page_region *vec = NULL;
  if (!c->a[10]) {
    size_t room = vec_len == 0 ? 1 : vec_len > (1u << 20) ? (1u << 20) : (size_t)vec_len;
    vec = calloc(room, sizeof *vec);
    if (vec == NULL) { close(fd); return r_errno(ENOMEM); }
  }
  struct pm_scan_arg arg;
  memset(&arg, 0, sizeof arg);
  arg.size = (uint64_t)c->a[11];
  arg.flags = (uint64_t)c->a[3];
  arg.start = (uint64_t)real_at(c->a[1]);
  arg.end = (uint64_t)real_at(c->a[2]);
  arg.vec = (uint64_t)(uintptr_t)vec;
  arg.vec_len = vec_len;
  arg.max_pages = (uint64_t)c->a[4];
  arg.category_inverted = (uint64_t)c->a[5];
  arg.category_mask = (uint64_t)c->a[6];
  arg.category_anyof_mask = (uint64_t)c->a[7];
  arg.return_mask = (uint64_t)c->a[8];
  long n = ioctl(fd, PAGEMAP_SCAN, &arg);
  int e = errno;
  close(fd);
  if (n < 0) { free(vec); return r_errno(e); }
  if (1 + 3 * n > VALUES_MAX) { free(vec); return r_errno(EOVERFLOW); }
  reply_values[0] = model_page((uintptr_t)arg.walk_end);
  for (long i = 0; i < n; i++) {
    reply_values[1 + 3 * i] = model_page((uintptr_t)vec[i].start);
    reply_values[2 + 3 * i] = model_page((uintptr_t)vec[i].end);
    reply_values[3 + 3 * i] = (int64_t)vec[i].categories;
  }
  free(vec);
  return r_values(n, (int)(1 + 3 * n));
}

/* write(2) of the mode to /proc/<target>/clear_refs. */
static struct reply clear_refs(const struct cmd *c) {
  char path[64], text[32];
  snprintf(path, sizeof path, "/proc/%lld/clear_refs", (long long)c->a[0]);
  int fd = open(path, O_WRONLY);
  if (fd < 0) return r_errno(errno);
  int len = snprintf(text, sizeof text, "%lld", (long long)c->a[1]);
  ssize_t n = write(fd, text, (size_t)len);
  int e = errno;
  close(fd);
  return n < 0 ? r_errno(e) : r_ok(0);
}

/*
 * userfaultfd() + UFFDIO_API(WP_ASYNC | WP_UNPOPULATED) + UFFDIO_REGISTER(MODE_WP) of
 * [addr, addr + len). The fd stays open for the life of the process: closing it would
 * unregister the range. UFFD_USER_MODE_ONLY lets an unprivileged uid create it whatever
 * vm.unprivileged_userfaultfd says; asynchronous write-protect faults never reach it.
 */
static struct reply uffd_register_wp(const struct cmd *c) {
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
  if (fd < 0) return r_errno(errno);
  struct uffdio_api api;
  memset(&api, 0, sizeof api);
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
  if (ioctl(fd, UFFDIO_API, &api) != 0) { int e = errno; close(fd); return r_errno(e); }
  struct uffdio_register reg;
  memset(&reg, 0, sizeof reg);
  reg.range.start = (uint64_t)real_span(c->a[0], c->a[1]); /* bytes */
  reg.range.len = (uint64_t)c->a[1];
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (ioctl(fd, UFFDIO_REGISTER, &reg) != 0) { int e = errno; close(fd); return r_errno(e); }
  return r_ok(0);
}

/* getdents of /proc/<target>/map_files/: the `start-end` names inside the region, in pages. */
static struct reply map_files_readdir(const struct cmd *c) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%lld/map_files", (long long)c->a[0]);
  DIR *d = opendir(path);
  if (d == NULL) return r_errno(errno);
  int n = 0;
  for (;;) {
    errno = 0;
    struct dirent *ent = readdir(d);
    if (ent == NULL) {
      int e = errno;
      closedir(d);
      if (e != 0) return r_errno(e);
      break;
    }
    unsigned long start, end;
    if (sscanf(ent->d_name, "%lx-%lx", &start, &end) != 2) continue; /* "." and ".." */
    /* the region, and below mmap_min_addr what root may map there (the model's pages below its own) */
    if (!(end <= MIN_ADDR_BYTES) && (start < REGION_BASE || end > REGION_BASE + REGION_PAGES * PAGE_BYTES)) continue; /* libc, the oracle */
    if (n + 2 > VALUES_MAX) { closedir(d); return r_errno(EOVERFLOW); }
    reply_values[n++] = model_page(start);
    reply_values[n++] = model_page(end);
  }
  /* readdir gives address order; keep it so even if a filesystem would not */
  for (int i = 2; i < n; i += 2) {
    for (int j = i; j >= 2 && reply_values[j] < reply_values[j - 2]; j -= 2) {
      int64_t t0 = reply_values[j], t1 = reply_values[j + 1];
      reply_values[j] = reply_values[j - 2]; reply_values[j + 1] = reply_values[j - 1];
      reply_values[j - 2] = t0; reply_values[j - 1] = t1;
    }
  }
  return r_values(n / 2, n);
}

/* The command loop of an emulated process; `slot` is its emulated pid. Never returns. */
static void process_loop(int slot) {
  for (;;) {
    struct cmd c;
    alarm(IDLE_SECONDS_MAX); /* a process the controller forgot does not live forever */
    if (read_full(cmd_pipe[slot][0], &c, sizeof c) != 0) _exit(3);
    alarm(0);
    struct reply r = r_errno(EINVAL);
    switch (c.kind) {
      case C_MMAP: r = do_mmap(&c); break;
      /* munmap, mprotect and madvise take a byte address (from REGION_BASE) and a byte length, placed at the kernel's edges (real_span). */
      case C_MUNMAP: r = call_result(munmap((void *)real_span(c.a[0], c.a[1]), (size_t)c.a[1])); break;
      case C_MPROTECT: r = call_result(mprotect((void *)real_span(c.a[0], c.a[1]), (size_t)c.a[1], (int)c.a[2])); break;
      case C_MREMAP: r = do_mremap(&c); break;
      case C_MADVISE:
        r = call_result(madvise((void *)real_span(c.a[0], c.a[1]), (size_t)c.a[1], madvise_advice(c.a[2])));
        break;
      case C_READ: r = user_access(real_addr(c.a[0]), 0, 0); break;
      case C_WRITE: r = user_access(real_addr(c.a[0]), 1, (uint32_t)c.a[1]); break;
      case C_FORK: {
        pid_t child = fork();
        if (child == 0) {
          slot = (int)c.a[0];
          continue; /* the child answers on its own pipes, from the next command on */
        }
        r = child < 0 ? r_errno(errno) : r_ok(child);
        break;
      }
      case C_EXIT: _exit(0);
      case C_PROC_MEM_READ: r = proc_mem(&c, 0); break;
      case C_PROC_MEM_WRITE: r = proc_mem(&c, 1); break;
      case C_PVM_READ: r = process_vm(&c, 0); break;
      case C_PVM_WRITE: r = process_vm(&c, 1); break;
      case C_SET_DUMPABLE: r = call_result(prctl(PR_SET_DUMPABLE, (unsigned long)c.a[0], 0, 0, 0)); break;
      case C_PAGEMAP_READ: r = pagemap_read(&c); break;
      case C_MINCORE: r = do_mincore(&c); break;
      case C_MSYNC: r = do_msync(&c); break;
      case C_VMSPLICE: r = do_vmsplice(&c); break;
      case C_PIPE_READ: r = do_pipe_read(&c); break;
      case C_MLOCK: case C_MUNLOCK: case C_MLOCKALL: case C_MUNLOCKALL: r = do_mlock(&c); break;
      case C_PAGEMAP_SCAN: r = pagemap_scan(&c); break;
      case C_CLEAR_REFS: r = clear_refs(&c); break;
      case C_UFFD_REGISTER_WP: r = uffd_register_wp(&c); break;
      case C_MAP_FILES_READDIR: r = map_files_readdir(&c); break;
    }
    if (write_full(reply_pipe[slot][1], &r, sizeof r) != 0) _exit(3);
    if (r.kind == O_OK && r.nvalues > 0 && write_full(reply_pipe[slot][1], reply_values, (size_t)r.nvalues * sizeof reply_values[0]) != 0) _exit(3);
  }
}

/* ---- the controller ------------------------------------------------------------------ */

static struct reply send_cmd(int pid, const struct cmd *c) {
  struct reply r;
  if (write_full(cmd_pipe[pid][1], c, sizeof *c) != 0) die("write command");
  if (read_full(reply_pipe[pid][0], &r, sizeof r) != 0) die("read reply");
  if (r.kind == O_OK && r.nvalues > 0) {
    if (r.nvalues > VALUES_MAX) { errno = EOVERFLOW; die("reply values"); }
    if (read_full(reply_pipe[pid][0], reply_values, (size_t)r.nvalues * sizeof reply_values[0]) != 0) die("read reply values");
  }
  return r;
}

static int pidfd_of(pid_t real) {
  int fd = (int)syscall(SYS_pidfd_open, real, 0);
  if (fd < 0) die("pidfd_open");
  return fd;
}

static struct reply spawn(int uid) {
  if (next_pid > PROCS_MAX) return r_errno(EAGAIN);
  int slot = next_pid;
  pid_t child = fork();
  if (child < 0) return r_errno(errno);
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (uid != 0 && (setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid) != 0 || setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0)) _exit(4);
    /* commit_creds makes a process whose euid changed non-dumpable; the model's spawn is dumpable. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    /* Ready: only now may another process look at this one (its uid and dumpable are final). */
    struct reply ready = r_ok(0);
    if (write_full(reply_pipe[slot][1], &ready, sizeof ready) != 0) _exit(3);
    process_loop(slot);
  }
  struct reply ready;
  if (read_full(reply_pipe[slot][0], &ready, sizeof ready) != 0) die("spawned process did not start");
  procs[slot].running = 1;
  procs[slot].real_pid = child;
  procs[slot].pidfd = pidfd_of(child);
  next_pid += 1;
  return r_ok(slot);
}

static struct reply fork_proc(int pid) {
  if (next_pid > PROCS_MAX) return r_errno(EAGAIN);
  struct cmd c = { .kind = C_FORK };
  c.a[0] = next_pid;
  struct reply r = send_cmd(pid, &c);
  if (r.kind != O_OK) return r;
  int slot = next_pid++;
  procs[slot].running = 1;
  procs[slot].real_pid = (pid_t)r.value;
  procs[slot].pidfd = pidfd_of((pid_t)r.value);
  return r_ok(slot);
}

/* exit: the process _exits; exit_mm has run once its pidfd polls readable. */
static struct reply exit_proc(int pid) {
  struct cmd c = { .kind = C_EXIT };
  if (write_full(cmd_pipe[pid][1], &c, sizeof c) != 0) die("write exit");
  struct pollfd p = { procs[pid].pidfd, POLLIN, 0 };
  if (poll(&p, 1, 10000) != 1) die("exit did not complete");
  close(procs[pid].pidfd);
  procs[pid].running = 0;
  return r_ok(0);
}

static void file_path(int id, char *out, size_t len) { snprintf(out, len, "%s/f%d", tmpdir, id); }

static struct reply creat_file(int64_t size_pages) {
  if (next_file > FILES_MAX) return r_errno(ENOSPC);
  char path[300];
  int id = next_file;
  file_path(id, path, sizeof path);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0666);
  if (fd < 0) return r_errno(errno);
  fchmod(fd, 0666);
  if (ftruncate(fd, (off_t)size_pages * (off_t)PAGE_BYTES) != 0) { int e = errno; close(fd); return r_errno(e); }
  file_fd[id] = fd;
  next_file += 1;
  return r_ok(id);
}

static int valid_file(int64_t id) { return id >= 1 && id < next_file; }

static struct reply file_op(const char *name, int64_t id, int64_t index, int64_t value) {
  if (!valid_file(id)) return r_errno(EBADF);
  int fd = file_fd[id];
  off_t at = (off_t)index * (off_t)PAGE_BYTES;
  if (strcmp(name, "pread") == 0) {
    uint32_t v = 0;
    ssize_t n = pread(fd, &v, 4, at);
    if (n < 0) return r_errno(errno);
    return r_ok(n == 0 ? -1 : (int64_t)v); /* the model: a read of zero bytes is -1 */
  }
  if (strcmp(name, "pwrite") == 0) {
    uint32_t v = (uint32_t)value;
    return pwrite(fd, &v, 4, at) == 4 ? r_ok(0) : r_errno(errno);
  }
  return call_result(ftruncate(fd, (off_t)index * (off_t)PAGE_BYTES));
}

/* ---- observation --------------------------------------------------------------------- */

static void print_backing(const char *path, unsigned long inode) {
  size_t tl = strlen(tmpdir);
  if (path[0] == '\0') { printf("\"anon\""); return; }
  if (strncmp(path, tmpdir, tl) == 0 && path[tl] == '/' && path[tl + 1] == 'f') { printf("\"file:%s\"", path + tl + 2); return; }
  if (strncmp(path, "/dev/zero", 9) == 0 || strncmp(path, "/SYSV", 5) == 0 || strncmp(path, "/memfd:", 7) == 0) {
    printf("\"shmem:%lu\"", inode);
    return;
  }
  printf("\"other\"");
}

static void observe_pages(int pid, uintptr_t start, uintptr_t end, int pagemap_fd, int mem_fd, int *first) {
  static uint64_t entries[PAGES_PER_VMA_MAX];
  size_t npages = (end - start) / PAGE_BYTES;
  for (size_t done = 0; done < npages;) {
    size_t chunk = npages - done < PAGES_PER_VMA_MAX ? npages - done : PAGES_PER_VMA_MAX;
    uintptr_t at = start + done * PAGE_BYTES;
    ssize_t n = pread(pagemap_fd, entries, chunk * 8, (off_t)(at / PAGE_BYTES * 8));
    if (n != (ssize_t)(chunk * 8)) die("read pagemap");
    for (size_t i = 0; i < chunk; i++) {
      uint64_t e = entries[i];
      int present = (int)((e >> 63) & 1), swapped = (int)((e >> 62) & 1);
      if (!present && !swapped) continue;
      /* The controller is root: pagemap shows it the swap type, 31 for a PTE marker. */
      int marker = swapped && (e & 0x1f) == SWP_TYPE_MARKER;
      int flags = present | swapped << 1 | (int)((e >> 61) & 1) << 2 | (int)((e >> 56) & 1) << 3 | (int)((e >> 55) & 1) << 4 |
                  (int)((e >> 57) & 1) << 5 | marker << 6;
      uintptr_t addr = at + i * PAGE_BYTES;
      long long value = -1;
      uint32_t v;
      /* A present page is read through /proc/<pid>/mem: GUP without FOLL_PIN takes no fault on it. */
      if (present && pread(mem_fd, &v, 4, (off_t)addr) == 4) value = v;
      printf("%s[%lld,%lld,%d]", *first ? "" : ",", (long long)model_page(addr), value, flags);
      *first = 0;
    }
    done += chunk;
  }
  (void)pid;
}

static void observe_process(int pid) {
  char path[64];
  pid_t real = procs[pid].real_pid;
  snprintf(path, sizeof path, "/proc/%d/maps", real);
  FILE *maps = fopen(path, "r");
  if (maps == NULL) die("open maps");
  snprintf(path, sizeof path, "/proc/%d/pagemap", real);
  int pagemap_fd = open(path, O_RDONLY);
  snprintf(path, sizeof path, "/proc/%d/mem", real);
  int mem_fd = open(path, O_RDONLY);
  if (pagemap_fd < 0 || mem_fd < 0) die("open pagemap or mem");
  uintptr_t ranges[256][2];
  int nranges = 0;
  printf("{\"pid\":%d,\"vmas\":[", pid);
  char line[LINE_BYTES_MAX];
  int first = 1;
  while (fgets(line, sizeof line, maps) != NULL) {
    unsigned long start, end, offset, inode;
    char perms[8], dev[16];
    int consumed = 0;
    if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &start, &end, perms, &offset, dev, &inode, &consumed) < 6) continue;
    /* the region, and below mmap_min_addr what root may map there (the model's pages below its own) */
    if (!(end <= MIN_ADDR_BYTES) && (start < REGION_BASE || end > REGION_BASE + REGION_PAGES * PAGE_BYTES)) continue;
    char *name = line + consumed;
    name[strcspn(name, "\n")] = '\0';
    printf("%s[%lld,%lld,\"%s\",", first ? "" : ",", (long long)model_page(start), (long long)model_page(end), perms);
    print_backing(name, inode);
    printf(",%lu]", offset / PAGE_BYTES);
    first = 0;
    if (nranges < 256) { ranges[nranges][0] = start; ranges[nranges][1] = end; nranges++; }
  }
  fclose(maps);
  printf("],\"pages\":[");
  first = 1;
  for (int i = 0; i < nranges; i++) observe_pages(pid, ranges[i][0], ranges[i][1], pagemap_fd, mem_fd, &first);
  printf("]}");
  close(pagemap_fd);
  close(mem_fd);
}

static void print_step(int step, struct reply r) {
  printf("{\"step\":%d,\"outcome\":", step);
  print_outcome(r);
  printf("%s,\"procs\":[", step_extra);
  step_extra[0] = '\0';
  int first = 1;
  for (int pid = 1; pid < next_pid; pid++) {
    if (!procs[pid].running) continue;
    if (!first) printf(",");
    observe_process(pid);
    first = 0;
  }
  printf("]}\n");
  fflush(stdout);
}

/*
 * The pages of `real`'s region that are empty entries (pte_none) of page tables that exist,
 * as PAGEMAP_SCAN sees them just before a scan: this kernel categorises such an entry
 * PAGE_IS_WRITTEN, where a range without a page table (pagemap_scan_pte_hole) gets only the
 * VMA's categories; present and swapped entries are never WRITTEN without PRESENT or
 * SWAPPED. Written to step_extra as "emptyPtes":[[start,end],...] in model pages. The model
 * has no page tables; harness/oracle.ts uses this to recognise the documented simplification
 * `pagemap-scan-empty-pte` exactly. Read-only (no PM_SCAN_WP_MATCHING): it changes nothing.
 */
static void probe_empty_ptes(pid_t real) {
  static struct page_region vec[512];
  char path[64];
  if (pagemap_scan_errno != 0) return;
  snprintf(path, sizeof path, "/proc/%d/pagemap", real);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return;
  size_t used = (size_t)snprintf(step_extra, sizeof step_extra, ",\"emptyPtes\":[");
  int first = 1;
  uint64_t end = REGION_BASE + REGION_PAGES * PAGE_BYTES;
  for (uint64_t start = REGION_BASE; start < end;) {
    struct pm_scan_arg arg;
    memset(&arg, 0, sizeof arg);
    arg.size = sizeof arg;
    arg.start = start;
    arg.end = end;
    arg.vec = (uint64_t)(uintptr_t)vec;
    arg.vec_len = 512;
    arg.category_mask = PAGE_IS_WRITTEN | PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
    arg.category_inverted = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
    arg.return_mask = PAGE_IS_WRITTEN;
    long n = ioctl(fd, PAGEMAP_SCAN, &arg);
    if (n < 0) die("PAGEMAP_SCAN probe of empty PTEs");
    for (long i = 0; i < n && used + 64 < sizeof step_extra; i++) {
      used += (size_t)snprintf(step_extra + used, sizeof step_extra - used, "%s[%lld,%lld]", first ? "" : ",",
                               (long long)model_page((uintptr_t)vec[i].start), (long long)model_page((uintptr_t)vec[i].end));
      first = 0;
    }
    if (n < 512 || arg.walk_end <= start) break;
    start = arg.walk_end;
  }
  if (used + 2 >= sizeof step_extra) die("too many empty-PTE ranges");
  snprintf(step_extra + used, sizeof step_extra - used, "]");
  close(fd);
}

/* ---- parsing and dispatch ------------------------------------------------------------ */

static int running(int64_t pid) { return pid >= 1 && pid < next_pid && procs[pid].running; }

static int advice_code(const char *name) {
  static const char *const names[] = {
    "DONTNEED", "PAGEOUT", "COLD", "DONTFORK", "DOFORK", "WILLNEED", "WIPEONFORK", "KEEPONFORK", "POPULATE_READ", "POPULATE_WRITE", "REMOVE", "FREE",
  };
  for (int i = 0; i < 12; i++) if (strcmp(name, names[i]) == 0) return i;
  return -1;
}

/*
 * One operation line. Fields after the name:
 *   spawn UID | creat SIZE | pread FILE INDEX | pwrite FILE INDEX VALUE | truncate FILE SIZE
 *   mmap PID ADDR LEN PROT SHARED PLACEMENT FILE PGOFF RW   (FILE -1: anonymous)
 *   munmap PID ADDR LEN | mprotect PID ADDR LEN PROT | madvise PID ADDR LEN ADVICE | mincore PID ADDR LEN (bytes)
 *   msync PID ADDR LEN FLAGS (bytes)
 *   vmsplice PID PIPE ADDR LEN NEWID (pages; PIPE 0: a new pipe, kept as NEWID) | pipe_read PID PIPE PAGES
 *   mremap PID ADDR OLD NEW MAYMOVE FIXED NEWADDR | read PID ADDR | write PID ADDR VALUE
 *   fork PID | exit PID | set_dumpable PID 0|1
 *   proc_mem_read PID TARGET ADDR | proc_mem_write PID TARGET ADDR VALUE (and process_vm_readv/writev)
 *   pagemap_read PID TARGET ADDR COUNT | clear_refs PID TARGET MODE | map_files_readdir PID TARGET
 *   uffd_register_wp PID ADDR LEN
 *   pagemap_scan PID TARGET START END FLAGS MAX_PAGES INVERTED MASK ANYOF RETURN VEC_LEN VEC_NULL SIZE
 *     (START and END in bytes from the region's base, so that unaligned ones can be written)
 * For the /proc/<target> operations a target that is not running is ENOENT, as opening
 * /proc/<pid>/... of a reaped process is.
 */
static struct reply run_line(const char *line) {
  char name[32], word[32] = "";
  long long x[CMD_ARGS] = { 0 };
  int consumed = 0;
  if (sscanf(line, "%31s%n", name, &consumed) != 1) return r_errno(EINVAL);
  const char *at = line + consumed;
  for (int i = 0; i < CMD_ARGS; i++) {
    char *next;
    long long v = strtoll(at, &next, 10);
    if (next == at) break;
    x[i] = v;
    at = next;
  }
  if (strcmp(name, "spawn") == 0) return spawn((int)x[0]);
  if (strcmp(name, "creat") == 0) return creat_file(x[0]);
  if (strcmp(name, "pread") == 0 || strcmp(name, "pwrite") == 0 || strcmp(name, "truncate") == 0) return file_op(name, x[0], x[1], x[2]);
  if (!running(x[0])) return r_errno(ESRCH);
  int pid = (int)x[0];
  struct cmd c;
  memset(&c, 0, sizeof c);
  if (strcmp(name, "fork") == 0) return fork_proc(pid);
  if (strcmp(name, "exit") == 0) return exit_proc(pid);
  if (strcmp(name, "mmap") == 0) {
    c.kind = C_MMAP;
    for (int i = 0; i < 9; i++) c.a[i] = x[i + 1];
    if (c.a[5] >= 0) {
      if (!valid_file(c.a[5])) return r_errno(EBADF);
      file_path((int)c.a[5], c.path, sizeof c.path);
    }
  } else if (strcmp(name, "munmap") == 0) {
    c.kind = C_MUNMAP; c.a[0] = x[1]; c.a[1] = x[2];
  } else if (strcmp(name, "mprotect") == 0) {
    c.kind = C_MPROTECT; c.a[0] = x[1]; c.a[1] = x[2]; c.a[2] = x[3];
  } else if (strcmp(name, "madvise") == 0) {
    if (sscanf(line, "%*s %*d %lld %lld %31s", &x[1], &x[2], word) != 3 || advice_code(word) < 0) return r_errno(EINVAL);
    c.kind = C_MADVISE; c.a[0] = x[1]; c.a[1] = x[2]; c.a[2] = advice_code(word);
  } else if (strcmp(name, "mincore") == 0) {
    c.kind = C_MINCORE; c.a[0] = x[1]; c.a[1] = x[2];
  } else if (strcmp(name, "msync") == 0) {
    c.kind = C_MSYNC; c.a[0] = x[1]; c.a[1] = x[2]; c.a[2] = x[3];
  } else if (strcmp(name, "vmsplice") == 0) {
    c.kind = C_VMSPLICE; c.a[0] = x[1]; c.a[1] = x[2]; c.a[2] = x[3]; c.a[3] = x[4];
  } else if (strcmp(name, "pipe_read") == 0) {
    c.kind = C_PIPE_READ; c.a[0] = x[1]; c.a[1] = x[2];
  } else if (strcmp(name, "mremap") == 0) {
    c.kind = C_MREMAP;
    for (int i = 0; i < 7; i++) c.a[i] = x[i + 1];
  } else if (strcmp(name, "read") == 0) {
    c.kind = C_READ; c.a[0] = x[1];
  } else if (strcmp(name, "write") == 0) {
    c.kind = C_WRITE; c.a[0] = x[1]; c.a[1] = x[2];
  } else if (strcmp(name, "set_dumpable") == 0) {
    c.kind = C_SET_DUMPABLE; c.a[0] = x[1];
  } else if (strcmp(name, "pagemap_read") == 0 || strcmp(name, "pagemap_scan") == 0 || strcmp(name, "clear_refs") == 0 ||
             strcmp(name, "map_files_readdir") == 0) {
    if (!running(x[1])) return r_errno(ENOENT);
    c.a[0] = procs[x[1]].real_pid;
    if (name[0] == 'c') {
      c.kind = C_CLEAR_REFS; c.a[1] = x[2];
    } else if (name[0] == 'm') {
      c.kind = C_MAP_FILES_READDIR;
    } else if (name[8] == 'r') {
      c.kind = C_PAGEMAP_READ; c.a[1] = x[2]; c.a[2] = x[3];
    } else {
      c.kind = C_PAGEMAP_SCAN;
      for (int i = 1; i < 12; i++) c.a[i] = x[i + 1];
      probe_empty_ptes(procs[x[1]].real_pid);
    }
  } else if (strcmp(name, "uffd_register_wp") == 0) {
    c.kind = C_UFFD_REGISTER_WP; c.a[0] = x[1]; c.a[1] = x[2];
  } else if (strcmp(name, "mlock") == 0 || strcmp(name, "munlock") == 0) {
    c.kind = name[1] == 'u' ? C_MUNLOCK : C_MLOCK; c.a[0] = x[1]; c.a[1] = x[2]; c.a[2] = x[3];
  } else if (strcmp(name, "mlockall") == 0) {
    c.kind = C_MLOCKALL; c.a[0] = x[1];
  } else if (strcmp(name, "munlockall") == 0) {
    c.kind = C_MUNLOCKALL;
  } else if (strncmp(name, "proc_mem_", 9) == 0 || strncmp(name, "process_vm_", 11) == 0) {
    if (!running(x[1])) return r_errno(ESRCH);
    int is_write = strcmp(name, "proc_mem_write") == 0 || strcmp(name, "process_vm_writev") == 0;
    c.kind = name[5] == 'm' ? (is_write ? C_PROC_MEM_WRITE : C_PROC_MEM_READ) : (is_write ? C_PVM_WRITE : C_PVM_READ);
    c.a[0] = procs[x[1]].real_pid; c.a[1] = x[2]; c.a[2] = x[3];
  } else {
    return r_errno(EINVAL);
  }
  return send_cmd(pid, &c);
}

/* Whether pagemap reports soft-dirty: a fresh VMA has VM_SOFTDIRTY when CONFIG_MEM_SOFT_DIRTY is on. */
static int probe_soft_dirty(void) {
  volatile uint32_t *p = mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if ((void *)p == MAP_FAILED) return 0;
  *p = 1;
  uint64_t e = 0;
  int fd = open("/proc/self/pagemap", O_RDONLY);
  if (fd >= 0) {
    if (pread(fd, &e, 8, (off_t)((uintptr_t)p / PAGE_BYTES * 8)) != 8) e = 0;
    close(fd);
  }
  munmap((void *)p, PAGE_BYTES);
  return (int)((e >> 55) & 1);
}

/* Whether ioctl(PAGEMAP_SCAN) exists here (Linux 6.7): 0, or the errno (ENOTTY before 6.7). */
static int probe_pagemap_scan(void) {
  int fd = open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) return errno;
  struct pm_scan_arg arg;
  memset(&arg, 0, sizeof arg);
  arg.size = sizeof arg;
  int rc = ioctl(fd, PAGEMAP_SCAN, &arg) < 0 ? errno : 0;
  close(fd);
  return rc;
}

/* Whether userfaultfd offers UFFD_FEATURE_WP_ASYNC (Linux 6.7): 0, or the errno of the first failing step. */
static int probe_uffd_wp_async(void) {
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
  if (fd < 0) return errno;
  struct uffdio_api api;
  memset(&api, 0, sizeof api);
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
  int rc = ioctl(fd, UFFDIO_API, &api) != 0 ? errno : 0;
  close(fd);
  return rc;
}

static const char *probe_text(int e) {
  static char buf[4][32];
  static int next;
  if (e == 0) return "ok";
  char *b = buf[next++ % 4];
  const char *name = e == ENOSYS ? "ENOSYS" : errno_name(e);
  if (name != NULL) snprintf(b, sizeof buf[0], "%s", name);
  else snprintf(b, sizeof buf[0], "E#%d", e);
  return b;
}

static void setup(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_fault;
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
  signal(SIGCHLD, SIG_IGN); /* exited emulated processes are reaped at once */
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  /*
   * One CPU for every process: madvise(PAGEOUT/COLD) drains only this CPU's LRU batches,
   * so a page faulted in on another CPU would not be isolated and the result would vary.
   */
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
      if (!CPU_ISSET(cpu, &set)) continue;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      sched_setaffinity(0, sizeof set, &set);
      break;
    }
  }
  for (int i = 1; i <= PROCS_MAX; i++) {
    if (pipe(cmd_pipe[i]) != 0 || pipe(reply_pipe[i]) != 0) die("pipe");
  }
  const char *base = getenv("ORACLE_TMPDIR");
  if (base == NULL) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf(tmpdir, sizeof tmpdir, "%s/mapfuzz-oracle-XXXXXX", base);
  if (mkdtemp(tmpdir) == NULL) die("mkdtemp");
  chmod(tmpdir, 0777);
  soft_dirty_supported = probe_soft_dirty();
  task_size_real = probe_task_size();
  pagemap_scan_errno = probe_pagemap_scan();
  uffd_wp_async_errno = probe_uffd_wp_async();
}

static void teardown(void) {
  for (int pid = 1; pid < next_pid; pid++) {
    if (procs[pid].running) kill(procs[pid].real_pid, SIGKILL);
  }
  for (int id = 1; id < next_file; id++) {
    char path[300];
    close(file_fd[id]);
    file_path(id, path, sizeof path);
    unlink(path);
  }
  rmdir(tmpdir);
}

#ifdef ORACLE_TRACE
/* A C reproducer defines ORACLE_TRACE and the trace_lines array before including this file. */
static int next_line(char *line, size_t len, int i) {
  if (trace_lines[i] == NULL) return 0;
  snprintf(line, len, "%s", trace_lines[i]);
  return 1;
}
#else
static int next_line(char *line, size_t len, int i) {
  (void)i;
  return fgets(line, (int)len, stdin) != NULL;
}
#endif

int main(void) {
  setup();
  printf("{\"oracle\":1,\"regionBase\":\"0x%lx\",\"regionPages\":%lu,\"taskSize\":\"0x%lx\",\"softDirty\":%d,\"caps\":{\"pagemapScan\":\"%s\",\"uffdWpAsync\":\"%s\"}}\n",
         REGION_BASE, REGION_PAGES, task_size_real, soft_dirty_supported, probe_text(pagemap_scan_errno), probe_text(uffd_wp_async_errno));
  fflush(stdout);
  char line[LINE_BYTES_MAX];
  int step = 0;
  for (int i = 0; next_line(line, sizeof line, i); i++) {
    if (line[0] == '#' || line[0] == '\n' || line[0] == '\0') continue;
    struct reply r = run_line(line);
    print_step(step++, r);
  }
  teardown();
  return 0;
}
