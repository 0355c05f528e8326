/*
 * mapfuzz threaded reproducer: the driver of a C reproducer of a concurrent trace (threads
 * from `clone`, operations of a `tid`, recorded interleavings). harness/oracle-c.ts writes
 * the trace as `trace_steps`, then oracle.c with its main renamed (`oracle_main`, unused),
 * then this file, which reuses the replayer's calls, parsing and observation unchanged.
 *
 * Each emulated thread is a real pthread of its process: `clone P` is pthread_create inside
 * P, and the thread reads its commands from the pipe pair of its tid (tids come from the
 * pid counter, as in the model, so the pool made before the first spawn has its pair).
 * Every task runs task_loop, the replayer's process_loop made safe for threads: a fault
 * jumps back to the faulting thread, and the calls that fill reply_values hold a lock.
 *
 * The operations of one concurrent segment (a top-level step of the model in which others
 * started nested) are armed, then released together: each task receives its command,
 * acknowledges it, moves to a CPU of its own and spins until the controller bumps the
 * shared generation. The real kernel does not follow the recorded interleaving; this only
 * makes the race likely, so the whole trace runs RACE_ATTEMPTS times (argv[1] overrides),
 * each attempt in fresh processes, and each attempt prints its outcomes. Sequential steps
 * run one at a time on one CPU, exactly as the replayer runs them.
 *
 * Output: per attempt `{"attempt":K,"attempts":N,"cpus":C}`, then the replayer's header and
 * step lines; a step of a segment also carries "attempt", "race" (its segment), "task" (the
 * tid or pid that performed it) and `"after":1` when it ran after the segment's release.
 *
 * Left out: task 0's operations (spawn, files) and clone in a segment run in the
 * controller before the release; a second operation of a task already armed in the
 * segment runs after the segment's others have completed. An operation of a thread whose
 * process exits during the race, and that never replied, is ESRCH (the model's outcome
 * for a thread killed by exit_group).
 */
#include <pthread.h>
#include <stdatomic.h>

#define C_CLONE 100
/* The most attempts one run makes. */
#define RACE_ATTEMPTS_MAX 100000
#define SPIN_YIELD_EVERY 1024

/* Shared by the controller and every emulated process: MAP_SHARED, mapped before the first spawn. */
struct race_board {
  atomic_uint go; /* the generation released last */
  atomic_uint armed[PROCS_MAX + 1]; /* per task: the generation its next command belongs to, 0 none */
  atomic_int cpu[PROCS_MAX + 1]; /* per armed task: the rank of the CPU it runs its command on */
};

static struct race_board *board;
static unsigned race_generation;
/* The CPUs this program may use, as before setup() pinned it to the first. */
static cpu_set_t cpus_all;
static int cpus_count;
/* Controller: the process of each tid made by clone (0: none). */
static int thread_owner[PROCS_MAX + 1];
/* Task side: reply_values and pagemap_read's buffer are the process's, one user at a time. */
static pthread_mutex_t values_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local sigjmp_buf thread_fault_jmp;
static _Thread_local volatile sig_atomic_t thread_fault_armed;

/* ---- a task (the main thread of an emulated process, or one of its pthreads) --------- */

static void on_thread_fault(int sig) {
  if (thread_fault_armed) siglongjmp(thread_fault_jmp, sig);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* user_access with the jump buffer of the faulting thread. */
static struct reply thread_access(uintptr_t addr, int write, uint32_t value) {
  int sig = sigsetjmp(thread_fault_jmp, 1);
  if (sig != 0) {
    thread_fault_armed = 0;
    struct reply r = { O_SIGNAL, -1, sig };
    return r;
  }
  thread_fault_armed = 1;
  uint32_t got = 0;
  if (write) *(volatile uint32_t *)addr = value;
  else got = *(volatile uint32_t *)addr;
  thread_fault_armed = 0;
  return r_ok(write ? 0 : got);
}

/*
 * Move the calling thread to the CPU of `rank` among cpus_all, or to the first for -1 (where
 * setup() put every process). Racer 0 goes to the second CPU: the controller, still arming
 * the others on the first, would share it with a spinning racer.
 */
static void pin_to(int rank) {
  int want = rank < 0 ? 0 : (rank + 1) % cpus_count;
  for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &cpus_all)) continue;
    if (seen++ != want) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    sched_setaffinity(0, sizeof one, &one); /* 0: the calling thread only */
    return;
  }
}

/* Spin until generation `gen` is released. Unbounded here: the task's alarm ends a forgotten wait. */
static void race_wait(unsigned gen) {
  for (unsigned long spins = 1; atomic_load_explicit(&board->go, memory_order_acquire) < gen; spins++) {
    if (spins % SPIN_YIELD_EVERY == 0) sched_yield(); /* two tasks may share a CPU */
  }
}

static void *thread_main(void *arg);

static struct reply task_clone(int64_t tid) {
  pthread_attr_t attr;
  pthread_t thread;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int e = pthread_create(&thread, &attr, thread_main, (void *)(intptr_t)tid);
  pthread_attr_destroy(&attr);
  return e == 0 ? r_ok(tid) : r_errno(e);
}

static int fills_values(int32_t kind) {
  return kind == C_PAGEMAP_READ || kind == C_PAGEMAP_SCAN || kind == C_MAP_FILES_READDIR || kind == C_MINCORE;
}

/* One command of process_loop's, but fork and exit (task_loop's: they change the task itself). */
static struct reply task_exec(const struct cmd *c) {
  switch (c->kind) {
    case C_MMAP: return do_mmap(c);
    case C_MUNMAP: return call_result(munmap((void *)(REGION_BASE + (uintptr_t)c->a[0]), (size_t)c->a[1]));
    case C_MPROTECT: return call_result(mprotect((void *)(REGION_BASE + (uintptr_t)c->a[0]), (size_t)c->a[1], (int)c->a[2]));
    case C_MREMAP: return do_mremap(c);
    case C_MADVISE: return call_result(madvise((void *)(REGION_BASE + (uintptr_t)c->a[0]), (size_t)c->a[1], madvise_advice(c->a[2])));
    case C_READ: return thread_access(real_addr(c->a[0]), 0, 0);
    case C_WRITE: return thread_access(real_addr(c->a[0]), 1, (uint32_t)c->a[1]);
    case C_PROC_MEM_READ: return proc_mem(c, 0);
    case C_PROC_MEM_WRITE: return proc_mem(c, 1);
    case C_PVM_READ: return process_vm(c, 0);
    case C_PVM_WRITE: return process_vm(c, 1);
    case C_SET_DUMPABLE: return call_result(prctl(PR_SET_DUMPABLE, (unsigned long)c->a[0], 0, 0, 0));
    case C_PAGEMAP_READ: return pagemap_read(c);
    case C_MINCORE: return do_mincore(c);
    case C_MSYNC: return do_msync(c);
    case C_VMSPLICE: return do_vmsplice(c);
    case C_PIPE_READ: return do_pipe_read(c);
    case C_MLOCK: case C_MUNLOCK: case C_MLOCKALL: case C_MUNLOCKALL: return do_mlock(c);
    case C_PAGEMAP_SCAN: return pagemap_scan(c);
    case C_CLEAR_REFS: return clear_refs(c);
    case C_UFFD_REGISTER_WP: return uffd_register_wp(c);
    case C_MAP_FILES_READDIR: return map_files_readdir(c);
    case C_CLONE: return task_clone(c->a[0]);
    default: return r_errno(EINVAL);
  }
}

/*
 * The command loop of one task; `slot` is its tid (its pid for a main thread). A command
 * armed for a race is acknowledged at once and performed when its generation is released,
 * on the CPU the controller chose; its reply follows then. Never returns.
 */
static void task_loop(int slot) {
  for (;;) {
    struct cmd c;
    /* Process-wide: re-armed by every task that waits, so it fires after the whole process idled. */
    alarm(IDLE_SECONDS_MAX);
    if (read_full(cmd_pipe[slot][0], &c, sizeof c) != 0) _exit(3);
    unsigned gen = atomic_exchange(&board->armed[slot], 0u);
    if (gen != 0) {
      struct reply ack = r_ok(getpid());
      if (write_full(reply_pipe[slot][1], &ack, sizeof ack) != 0) _exit(3);
      pin_to(atomic_load(&board->cpu[slot]));
      race_wait(gen);
    }
    if (c.kind == C_EXIT) _exit(0); /* exit_group: every thread of the process */
    int locked = c.kind == C_FORK || fills_values(c.kind);
    if (locked) pthread_mutex_lock(&values_lock);
    struct reply r;
    if (c.kind == C_FORK) {
      pid_t child = fork(); /* the child has this thread alone, as fork copies only the caller */
      if (child == 0) {
        pthread_mutex_unlock(&values_lock);
        slot = (int)c.a[0];
        if (gen != 0) pin_to(-1);
        continue; /* the child answers on its own pipes, from the next command on */
      }
      r = child < 0 ? r_errno(errno) : r_ok(child);
    } else {
      r = task_exec(&c);
    }
    if (gen != 0) pin_to(-1);
    if (write_full(reply_pipe[slot][1], &r, sizeof r) != 0) _exit(3);
    if (r.kind == O_OK && r.nvalues > 0 && write_full(reply_pipe[slot][1], reply_values, (size_t)r.nvalues * sizeof reply_values[0]) != 0) _exit(3);
    if (locked) pthread_mutex_unlock(&values_lock);
  }
}

static void *thread_main(void *arg) {
  task_loop((int)(intptr_t)arg);
  return NULL;
}

/* ---- the controller ------------------------------------------------------------------ */

/* The replayer's spawn, with the new process running task_loop. */
static struct reply spawn_task(int uid) {
  if (next_pid > PROCS_MAX) return r_errno(EAGAIN);
  int slot = next_pid;
  pid_t child = fork();
  if (child < 0) return r_errno(errno);
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (uid != 0 && (setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid) != 0 || setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0)) _exit(4);
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    struct reply ready = r_ok(0);
    if (write_full(reply_pipe[slot][1], &ready, sizeof ready) != 0) _exit(3);
    task_loop(slot);
  }
  struct reply ready;
  if (read_full(reply_pipe[slot][0], &ready, sizeof ready) != 0) die("spawned process did not start");
  procs[slot].running = 1;
  procs[slot].real_pid = child;
  procs[slot].pidfd = pidfd_of(child);
  next_pid += 1;
  return r_ok(slot);
}

/* The process a line names (its first number), or 0 for task 0's lines (spawn, files). */
static int line_pid(const char *line) {
  static const char *const task0[] = { "spawn ", "creat ", "pread ", "pwrite ", "truncate " };
  for (int i = 0; i < 5; i++) if (strncmp(line, task0[i], strlen(task0[i])) == 0) return 0;
  int pid = 0;
  if (sscanf(line, "%*s %d", &pid) != 1) return 0;
  return pid;
}

/*
 * The task that performs a step: its tid, or its process's main thread; -1 when the tid is
 * not a live thread of that process (the model's ESRCH), 0 for task 0.
 */
static int live_thread(int tid) { return tid >= 1 && tid <= PROCS_MAX && thread_owner[tid] != 0 && running(thread_owner[tid]); }

static int step_slot(const struct trace_step *s) {
  int pid = line_pid(s->line);
  if (pid == 0) return s->tid == 0 || running(s->tid) || live_thread(s->tid) ? 0 : -1; /* task 0's step: the controller performs it */
  if (s->tid == 0 || s->tid == pid) return pid;
  if (!live_thread(s->tid) || thread_owner[s->tid] != pid) return -1;
  return s->tid;
}

static void swap_pipes(int a, int b) {
  for (int end = 0; end < 2; end++) {
    int t = cmd_pipe[a][end]; cmd_pipe[a][end] = cmd_pipe[b][end]; cmd_pipe[b][end] = t;
    t = reply_pipe[a][end]; reply_pipe[a][end] = reply_pipe[b][end]; reply_pipe[b][end] = t;
  }
}

static struct reply clone_task(int pid, int slot) {
  if (!running(pid)) return r_errno(ESRCH);
  if (next_pid > PROCS_MAX) return r_errno(EAGAIN);
  struct cmd c = { .kind = C_CLONE };
  c.a[0] = next_pid;
  struct reply r = send_cmd(slot, &c);
  if (r.kind != O_OK) return r;
  thread_owner[next_pid++] = pid;
  return r;
}

/* One step at a time, as the replayer runs it, on the task the step names. */
static struct reply run_step(const struct trace_step *s) {
  int slot = step_slot(s);
  if (slot < 0) return r_errno(ESRCH);
  if (strncmp(s->line, "spawn ", 6) == 0) {
    int uid = 1000;
    sscanf(s->line, "%*s %d", &uid);
    return spawn_task(uid);
  }
  if (strncmp(s->line, "clone ", 6) == 0) return clone_task(line_pid(s->line), slot);
  int pid = line_pid(s->line);
  if (slot == 0 || slot == pid) return run_line(s->line);
  /* run_line sends to the pipes of the process it parses: lend them the thread's. */
  swap_pipes(pid, slot);
  struct reply r = run_line(s->line);
  swap_pipes(pid, slot);
  return r;
}

enum race_role { R_DONE, R_CMD, R_FORK, R_EXIT, R_LATER };

/* One operation of a concurrent segment. */
struct race_op {
  const struct trace_step *step;
  enum race_role role;
  int pid, slot, fork_slot;
  struct reply r;
  int64_t *values; /* a copy of reply_values for r, malloc'd */
  char extra[1 << 16]; /* the replayer's step_extra for it (a PAGEMAP_SCAN's empty PTEs) */
};

static int controller_step(const char *line) {
  return line_pid(line) == 0 || strncmp(line, "clone ", 6) == 0;
}

static void keep_values(struct race_op *o) {
  o->values = NULL;
  if (o->r.kind != O_OK || o->r.nvalues <= 0) return;
  o->values = malloc((size_t)o->r.nvalues * sizeof reply_values[0]);
  if (o->values == NULL) die("malloc");
  memcpy(o->values, reply_values, (size_t)o->r.nvalues * sizeof reply_values[0]);
}

static void arm(struct race_op *o, unsigned gen, int *rank) {
  atomic_store(&board->cpu[o->slot], (*rank)++);
  atomic_store(&board->armed[o->slot], gen);
}

/* Hand one operation to its task, which acknowledges it and waits for the release. */
static void race_send(struct race_op *o, unsigned gen, int *rank) {
  const char *line = o->step->line;
  int is_exit = strncmp(line, "exit ", 5) == 0, is_fork = strncmp(line, "fork ", 5) == 0;
  if ((is_exit || is_fork) && !running(o->pid)) { o->r = r_errno(ESRCH); return; }
  if (is_fork && next_pid > PROCS_MAX) { o->r = r_errno(EAGAIN); return; }
  arm(o, gen, rank);
  if (is_exit || is_fork) {
    struct cmd c = { .kind = is_exit ? C_EXIT : C_FORK };
    if (is_fork) o->fork_slot = next_pid++;
    c.a[0] = o->fork_slot;
    send_cmd(o->slot, &c); /* the acknowledgement */
    o->role = is_exit ? R_EXIT : R_FORK;
    return;
  }
  if (o->slot != o->pid) swap_pipes(o->pid, o->slot);
  struct reply r = run_line(line);
  if (o->slot != o->pid) swap_pipes(o->pid, o->slot);
  snprintf(o->extra, sizeof o->extra, "%s", step_extra);
  step_extra[0] = '\0';
  if (atomic_exchange(&board->armed[o->slot], 0u) != 0) { o->r = r; keep_values(o); return; } /* refused before it was sent */
  o->role = R_CMD;
}

/* The reply of a released operation; ESRCH when its process died before it replied. */
static struct reply race_reply(const struct race_op *o) {
  struct pollfd p[2] = { { reply_pipe[o->slot][0], POLLIN, 0 }, { procs[o->pid].pidfd, POLLIN, 0 } };
  for (;;) {
    if (poll(p, 2, -1) < 0) { if (errno == EINTR) continue; die("poll reply"); }
    if (p[0].revents & POLLIN) break;
    if (p[1].revents & POLLIN) return r_errno(ESRCH);
  }
  struct reply r;
  if (read_full(reply_pipe[o->slot][0], &r, sizeof r) != 0) die("read reply");
  if (r.kind == O_OK && r.nvalues > 0) {
    if (r.nvalues > VALUES_MAX) { errno = EOVERFLOW; die("reply values"); }
    if (read_full(reply_pipe[o->slot][0], reply_values, (size_t)r.nvalues * sizeof reply_values[0]) != 0) die("read reply values");
  }
  return r;
}

/* The replies in start order; an exit last, once the others' processes could still answer. */
static void race_collect(struct race_op *ops, int n) {
  for (int i = 0; i < n; i++) {
    struct race_op *o = &ops[i];
    if (o->role != R_CMD && o->role != R_FORK) continue;
    o->r = race_reply(o);
    keep_values(o);
    if (o->role != R_FORK || o->r.kind != O_OK) continue;
    procs[o->fork_slot].running = 1;
    procs[o->fork_slot].real_pid = (pid_t)o->r.value;
    procs[o->fork_slot].pidfd = pidfd_of((pid_t)o->r.value);
    o->r = r_ok(o->fork_slot);
  }
  for (int i = 0; i < n; i++) {
    struct race_op *o = &ops[i];
    if (o->role != R_EXIT) continue;
    struct pollfd p = { procs[o->pid].pidfd, POLLIN, 0 };
    if (poll(&p, 1, 10000) != 1) die("exit did not complete");
    close(procs[o->pid].pidfd);
    procs[o->pid].running = 0;
    o->r = r_ok(0);
  }
}

/*
 * Steps [first, first + n) of segment `race`: task 0's steps and clones first, in the
 * controller; then every other operation is armed in its task and all are released at
 * once; a task's second operation of the segment runs after. Each step then prints its
 * outcome with the observation of the whole segment.
 */
static void run_race(int first, int n, int attempt) {
  struct race_op *ops = calloc((size_t)n, sizeof *ops);
  if (ops == NULL) die("calloc");
  unsigned gen = ++race_generation;
  int rank = 0;
  for (int i = 0; i < n; i++) {
    struct race_op *o = &ops[i];
    o->step = &trace_steps[first + i];
    o->pid = line_pid(o->step->line);
    o->slot = step_slot(o->step);
    o->role = R_DONE;
    if (controller_step(o->step->line)) { o->r = run_step(o->step); keep_values(o); snprintf(o->extra, sizeof o->extra, "%s", step_extra); step_extra[0] = '\0'; }
  }
  for (int i = 0; i < n; i++) {
    struct race_op *o = &ops[i];
    if (controller_step(o->step->line)) continue;
    if (o->slot < 0) { o->r = r_errno(ESRCH); continue; }
    int taken = 0;
    for (int j = 0; j < i; j++) taken |= ops[j].slot == o->slot && ops[j].role != R_DONE;
    if (taken) { o->role = R_LATER; continue; }
    race_send(o, gen, &rank);
  }
  atomic_store_explicit(&board->go, gen, memory_order_release);
  race_collect(ops, n);
  for (int i = 0; i < n; i++) {
    struct race_op *o = &ops[i];
    if (o->role != R_LATER) continue;
    o->r = run_step(o->step);
    keep_values(o);
    snprintf(o->extra, sizeof o->extra, "%s", step_extra);
    step_extra[0] = '\0';
  }
  for (int i = 0; i < n; i++) {
    struct race_op *o = &ops[i];
    if (o->values != NULL) memcpy(reply_values, o->values, (size_t)o->r.nvalues * sizeof reply_values[0]);
    snprintf(step_extra, sizeof step_extra, "%s,\"attempt\":%d,\"race\":%d,\"task\":%d%s", o->extra, attempt, o->step->race,
             o->slot < 0 ? o->step->tid : o->slot, o->role == R_LATER ? ",\"after\":1" : "");
    print_step(first + i, o->r);
    free(o->values);
  }
  free(ops);
}

/* One attempt: the whole trace in fresh processes, files and pipes. */
static void run_attempt(int attempt, int attempts) {
  if (sched_getaffinity(0, sizeof cpus_all, &cpus_all) != 0) die("sched_getaffinity");
  cpus_count = CPU_COUNT(&cpus_all);
  setup();
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_thread_fault;
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
  board = mmap(NULL, sizeof *board, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if ((void *)board == MAP_FAILED) die("mmap race board");
  printf("{\"attempt\":%d,\"attempts\":%d,\"cpus\":%d}\n", attempt, attempts, cpus_count);
  printf("{\"oracle\":1,\"regionBase\":\"0x%lx\",\"regionPages\":%lu,\"softDirty\":%d,\"caps\":{\"pagemapScan\":\"%s\",\"uffdWpAsync\":\"%s\"}}\n",
         REGION_BASE, REGION_PAGES, soft_dirty_supported, probe_text(pagemap_scan_errno), probe_text(uffd_wp_async_errno));
  fflush(stdout);
  for (int i = 0; trace_steps[i].line != NULL;) {
    int race = trace_steps[i].race, n = 1;
    if (race == 0) {
      print_step(i, run_step(&trace_steps[i]));
      i += 1;
      continue;
    }
    while (trace_steps[i + n].line != NULL && trace_steps[i + n].race == race) n++;
    run_race(i, n, attempt);
    i += n;
  }
  teardown();
}

int main(int argc, char **argv) {
  int attempts = RACE_ATTEMPTS;
  if (argc > 1) attempts = atoi(argv[1]);
  if (attempts < 1 || attempts > RACE_ATTEMPTS_MAX) {
    fprintf(stderr, "usage: %s [ATTEMPTS]   (1 to %d, default %d)\n", argv[0], RACE_ATTEMPTS_MAX, RACE_ATTEMPTS);
    return 2;
  }
  for (int attempt = 1; attempt <= attempts; attempt++) {
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) die("fork attempt");
    if (child == 0) {
      run_attempt(attempt, attempts);
      fflush(stdout);
      _exit(0);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child) die("waitpid attempt");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "attempt %d failed (status 0x%x)\n", attempt, (unsigned)status);
      return 1;
    }
  }
  return 0;
}
