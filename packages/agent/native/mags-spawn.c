/*
 * mags-spawn: starts the sandbox runtime (`crun run`) for the agent. The agent lives in the server's Node process,
 * whose every spawn forks all of it (100-200 MB: ~5-8 ms of the event loop per sandbox, the largest CPU item of a
 * job in a profile); this small static process forks in well under a millisecond.
 *
 * Started as: mags-spawn --runtime PATH --runtime-root DIR --sandboxes DIR --prefix PREFIX
 * Its only channel is the stdin/stdout pipe pair the agent made (as mags-hostd's). One request per line, tab-separated:
 *   ID\trun\tBUNDLE\tNAME   runs `RUNTIME --root RUNTIME-ROOT run --bundle BUNDLE NAME` in a session of its own, its
 *                           stdin, stdout and stderr three new pipes; answered `ID\t0\tPID IN OUT ERR`, where IN, OUT
 *                           and ERR are this process's descriptors of the pipes' other ends, which the agent opens
 *                           as /proc/<this pid>/fd/N (root only) and then releases:
 *   ID\trelease\tPID        closes this process's ends of PID's pipes; answered `ID\t0\t`
 * An error is answered `ID\tERRNO\tSENTENCE`. When a runtime it started ends, it writes `x\tPID\tCODE\tSIGNAL`.
 * BUNDLE must be a directory directly under --sandboxes and NAME (the container's name) must equal its last component
 * and start with PREFIX: only the agent's own sandboxes are run, as the agent itself would run them.
 *
 * Built static by scripts/build-tool.sh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_HELD 4096
#define MAX_LINE 8192

extern char **environ;

static const char *runtime, *runtime_root, *sandboxes, *prefix;

/* This process's ends of each started runtime's pipes, until the agent releases them. */
static struct {
  pid_t pid;
  int fds[3];
} held[MAX_HELD];

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  char buf[MAX_LINE];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
  for (char *p = buf; p < buf + n;) {
    ssize_t w = write(1, p, (size_t)(buf + n - p));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) exit(0); /* the agent is gone */
    p += w;
  }
}

static int name_ok(const char *name) {
  size_t n = strlen(prefix);
  if (strncmp(name, prefix, n) != 0 || !name[n]) return 0;
  for (const char *c = name + n; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9'))) return 0;
  return 1;
}

static void run(const char *id, const char *bundle, const char *name) {
  size_t n = strlen(sandboxes);
  if (strncmp(bundle, sandboxes, n) != 0 || bundle[n] != '/' || strcmp(bundle + n + 1, name) != 0 || !name_ok(name)) {
    say("%s\t%d\t%s is not a sandbox of this agent\n", id, EPERM, bundle);
    return;
  }
  int slot = -1;
  for (int i = 0; i < MAX_HELD; i++)
    if (!held[i].pid) {
      slot = i;
      break;
    }
  if (slot < 0) {
    say("%s\t%d\ttoo many runtimes not released\n", id, EMFILE);
    return;
  }
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) < 0) goto fail;
  if (pipe2(out, O_CLOEXEC) < 0) {
    close(in[0]), close(in[1]);
    goto fail;
  }
  if (pipe2(err, O_CLOEXEC) < 0) {
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    goto fail;
  }
  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    close(in[0]), close(in[1]), close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    errno = e;
    goto fail;
  }
  if (pid == 0) {
    /* As the agent's own spawn did: a session of its own (the agent kills the group), default signals. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) _exit(127);
    syscall(SYS_close_range, 3U, ~0U, 0U);
    char *argv[] = {(char *)runtime, "--root", (char *)runtime_root, "run", "--bundle", (char *)bundle, (char *)name, NULL};
    execve(runtime, argv, environ);
    dprintf(2, "mags-spawn: cannot run %s: %s\n", runtime, strerror(errno));
    _exit(127);
  }
  close(in[0]), close(out[1]), close(err[1]);
  held[slot].pid = pid;
  held[slot].fds[0] = in[1];
  held[slot].fds[1] = out[0];
  held[slot].fds[2] = err[0];
  say("%s\t0\t%d %d %d %d\n", id, (int)pid, in[1], out[0], err[0]);
  return;
fail:
  say("%s\t%d\tcannot start the runtime: %s\n", id, errno, strerror(errno));
}

static void release(const char *id, const char *pid_text) {
  pid_t pid = (pid_t)atoi(pid_text);
  for (int i = 0; pid > 0 && i < MAX_HELD; i++) {
    if (held[i].pid != pid) continue;
    for (int k = 0; k < 3; k++) close(held[i].fds[k]);
    held[i].pid = 0;
  }
  say("%s\t0\t\n", id);
}

static void handle(char *line) {
  char *f[5];
  int n = 0;
  for (char *p = line, *tab; n < 5; p = tab + 1) {
    f[n++] = p;
    if (!(tab = strchr(p, '\t'))) break;
    *tab = '\0';
  }
  if (n == 4 && !strcmp(f[1], "run")) return run(f[0], f[2], f[3]);
  if (n == 3 && !strcmp(f[1], "release")) return release(f[0], f[2]);
  if (n >= 2) say("%s\t%d\tunknown request %s\n", f[0], EINVAL, f[1]);
}

static void reap(void) {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    if (WIFEXITED(status)) say("x\t%d\t%d\t0\n", (int)pid, WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) say("x\t%d\t-1\t%d\n", (int)pid, WTERMSIG(status));
  }
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--runtime")) runtime = argv[i + 1];
    else if (!strcmp(argv[i], "--runtime-root")) runtime_root = argv[i + 1];
    else if (!strcmp(argv[i], "--sandboxes")) sandboxes = argv[i + 1];
    else if (!strcmp(argv[i], "--prefix")) prefix = argv[i + 1];
  }
  if (!runtime || !runtime_root || !sandboxes || !prefix || runtime[0] != '/' || sandboxes[0] != '/' || !prefix[0]) {
    fprintf(stderr, "usage: mags-spawn --runtime PATH --runtime-root DIR --sandboxes DIR --prefix PREFIX\n");
    return 2;
  }
  /* Nothing but the agent's three pipes: a descriptor the agent's process leaked to it is closed. */
  syscall(SYS_close_range, 3U, ~0U, 0U);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 1; /* the agent is already gone */
  signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return 1;
  static char buf[MAX_LINE];
  size_t len = 0;
  for (;;) {
    struct pollfd p[2] = {{.fd = 0, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return 1;
    }
    if (p[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
      }
      reap();
    }
    if (p[0].revents & (POLLIN | POLLHUP)) {
      ssize_t r = read(0, buf + len, sizeof buf - len);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return 0; /* the agent closed its end */
      len += (size_t)r;
      char *start = buf, *nl;
      while ((nl = memchr(start, '\n', (size_t)(buf + len - start)))) {
        *nl = '\0';
        handle(start);
        start = nl + 1;
      }
      len = (size_t)(buf + len - start);
      memmove(buf, start, len);
      if (len == sizeof buf) len = 0; /* a line too long to be a request */
    }
  }
}
