/*
 * mags-tool: the helper an exec runs inside a sandbox, as /.mags/tool (bound read-only from the agent's files tmpfs).
 * It runs under the exec's own confinement (same process spec, namespaces, cgroup and seccomp filter); it only
 * relays bytes between its stdio and something that exists inside the sandbox already.
 *
 *   tool pty [--size COLSxROWS] [--control FD] -- PROGRAM [ARG...]
 *     Opens a pseudo-terminal on the sandbox's own devpts, sets its size, runs PROGRAM in a new session with the
 *     terminal as its controlling terminal and stdio, and relays stdin to the terminal and the terminal to stdout.
 *     Lines "COLS ROWS" read from the control descriptor resize the terminal (the kernel sends SIGWINCH). Exits with
 *     PROGRAM's exit code, or 128+n when a signal n ended it.
 *
 *   tool launch
 *     PID 2 of every sandbox, under the init (the sandbox's bundle runs it). Writes "READY\n" to stdout, reads its
 *     job from stdin to the end: environment entries "NAME=VALUE", each ended by a NUL, an empty entry, then the
 *     script. Sets the entries over its environment, changes to /root (else /), and becomes /bin/sh -c SCRIPT. One
 *     program instead of the shell, `cat` and the second shell a shell launcher took.
 *
 *   tool connect PORT
 *     Connects to 127.0.0.1:PORT in the sandbox's network namespace and relays stdin to the connection and the
 *     connection to stdout. Writes "connected\n" to stderr once the connection is made (the server opens the SSH
 *     forwarding channel only then); on failure a sentence on stderr and exit code 1.
 *
 * Built static (gcc -static -O2) by scripts/build-tool.sh, so it runs in any image.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define BUF 65536

static void die(const char *what) {
  fprintf(stderr, "mags-tool: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Writes all of buf to a blocking descriptor; 0 on success, -1 when the reader is gone. */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, -1);
        continue;
      }
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

static int parse_size(const char *s, unsigned short *cols, unsigned short *rows) {
  unsigned c = 0, r = 0;
  if (sscanf(s, "%ux%u", &c, &r) != 2 || c == 0 || r == 0 || c > 10000 || r > 10000) return -1;
  *cols = (unsigned short)c;
  *rows = (unsigned short)r;
  return 0;
}

static void set_size(int master, unsigned short cols, unsigned short rows) {
  struct winsize ws = {.ws_row = rows, .ws_col = cols};
  ioctl(master, TIOCSWINSZ, &ws);
}

/* Applies every complete "COLS ROWS" line in the control buffer; returns how many bytes are left unparsed. */
static size_t apply_control(int master, char *buf, size_t len) {
  size_t start = 0;
  for (size_t i = 0; i < len; i++) {
    if (buf[i] != '\n') continue;
    buf[i] = '\0';
    unsigned c = 0, r = 0;
    if (sscanf(buf + start, "%u %u", &c, &r) == 2 && c > 0 && r > 0 && c <= 10000 && r <= 10000)
      set_size(master, (unsigned short)c, (unsigned short)r);
    start = i + 1;
  }
  memmove(buf, buf + start, len - start);
  return len - start;
}

static int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

static int run_pty(int argc, char **argv) {
  unsigned short cols = 80, rows = 24;
  int control = -1;
  int i = 0;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      i++;
      break;
    } else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
      if (parse_size(argv[++i], &cols, &rows) < 0) {
        fprintf(stderr, "mags-tool: --size wants COLSxROWS, such as 80x24\n");
        return 2;
      }
    } else if (strcmp(argv[i], "--control") == 0 && i + 1 < argc) {
      control = atoi(argv[++i]);
    } else {
      fprintf(stderr, "mags-tool: pty: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (i >= argc) {
    fprintf(stderr, "mags-tool: pty: no program to run\n");
    return 2;
  }

  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) die("posix_openpt");
  if (grantpt(master) < 0) die("grantpt");
  if (unlockpt(master) < 0) die("unlockpt");
  char *slave_name = ptsname(master);
  if (!slave_name) die("ptsname");
  set_size(master, cols, rows);

  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    if (setsid() < 0) die("setsid");
    int slave = open(slave_name, O_RDWR);
    if (slave < 0) die("open the terminal");
    if (ioctl(slave, TIOCSCTTY, 0) < 0) die("TIOCSCTTY");
    dup2(slave, 0);
    dup2(slave, 1);
    dup2(slave, 2);
    if (slave > 2) close(slave);
    if (control > 2) close(control);
    signal(SIGPIPE, SIG_DFL);
    execvp(argv[i], argv + i);
    fprintf(stderr, "mags-tool: cannot run %s: %s\n", argv[i], strerror(errno));
    _exit(127);
  }

  signal(SIGPIPE, SIG_IGN);
  fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
  char out[BUF], in[BUF], ctl[256];
  size_t in_len = 0, in_off = 0, ctl_len = 0;
  int stdin_open = 1, master_open = 1;
  int status = 0, exited = 0;

  for (;;) {
    if (!exited) {
      pid_t w = waitpid(child, &status, WNOHANG);
      if (w == child) exited = 1;
    }
    struct pollfd p[3];
    int n = 0, ip = -1, im = -1, ic = -1;
    if (master_open) {
      im = n;
      p[n].fd = master;
      p[n].events = POLLIN | (in_len > in_off ? POLLOUT : 0);
      n++;
    }
    if (stdin_open && in_len == in_off) {
      ip = n;
      p[n].fd = 0;
      p[n].events = POLLIN;
      n++;
    }
    if (control >= 0) {
      ic = n;
      p[n].fd = control;
      p[n].events = POLLIN;
      n++;
    }
    if (!master_open) break;
    /* Once the program has exited, what it wrote is drained until the terminal stays quiet for a moment (processes
     * it left behind may hold the terminal open for ever). */
    int r = poll(p, (nfds_t)n, exited ? 100 : 200);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (r == 0) {
      if (exited) break;
      continue;
    }
    if (im >= 0 && (p[im].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t got = read(master, out, sizeof out);
      if (got > 0) {
        if (write_all(1, out, (size_t)got) < 0) break; /* the reader is gone */
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        master_open = 0; /* EIO: every holder of the terminal closed it */
      }
    }
    if (im >= 0 && master_open && (p[im].revents & POLLOUT) && in_len > in_off) {
      ssize_t put = write(master, in + in_off, in_len - in_off);
      if (put > 0) in_off += (size_t)put;
      if (in_off == in_len) in_off = in_len = 0;
    }
    if (ip >= 0 && (p[ip].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t got = read(0, in, sizeof in);
      if (got > 0) {
        in_len = (size_t)got;
        in_off = 0;
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        stdin_open = 0; /* as OpenSSH's server: the end of input does not end the terminal's program */
      }
    }
    if (ic >= 0 && (p[ic].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t got = read(control, ctl + ctl_len, sizeof ctl - 1 - ctl_len);
      if (got > 0) {
        ctl_len = apply_control(master, ctl, ctl_len + (size_t)got);
        if (ctl_len == sizeof ctl - 1) ctl_len = 0; /* a line too long to be a size */
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(control);
        control = -1;
      }
    }
  }
  close(master); /* the terminal hangs up: its session's processes get SIGHUP */
  if (!exited) {
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
  }
  return exit_code(status);
}

static int run_connect(int argc, char **argv) {
  if (argc != 1) {
    fprintf(stderr, "mags-tool: connect wants one PORT\n");
    return 2;
  }
  char *end;
  long port = strtol(argv[0], &end, 10);
  if (*end != '\0' || port < 1 || port > 65535) {
    fprintf(stderr, "mags-tool: connect: %s is not a port from 1 to 65535\n", argv[0]);
    return 2;
  }
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("socket");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
    fprintf(stderr, "mags-tool: connect to 127.0.0.1:%ld: %s\n", port, strerror(errno));
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  if (write_all(2, "connected\n", 10) < 0) return 1;
  char buf[BUF];
  int in_open = 1, sock_open = 1;
  while (sock_open) {
    struct pollfd p[2] = {{.fd = s, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    int r = poll(p, in_open ? 2 : 1, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = read(s, buf, sizeof buf);
      if (got > 0) {
        if (write_all(1, buf, (size_t)got) < 0) break;
      } else if (got == 0 || errno != EINTR) {
        sock_open = 0;
      }
    }
    if (in_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t got = read(0, buf, sizeof buf);
      if (got > 0) {
        if (write_all(s, buf, (size_t)got) < 0) sock_open = 0;
      } else if (got == 0 || errno != EINTR) {
        in_open = 0;
        shutdown(s, SHUT_WR); /* the client's end of input reaches the server as a half close */
      }
    }
  }
  close(s);
  return 0;
}

/* Most a job may be (the script and its environment are far smaller: the server caps both). */
#define MAX_JOB (64 * 1024 * 1024)

static int run_launch(void) {
  if (write_all(1, "READY\n", 6) < 0) return 1;
  size_t cap = 65536, len = 0;
  char *job = malloc(cap + 1);
  if (!job) die("memory");
  for (;;) {
    if (len == cap) {
      if (cap >= MAX_JOB) {
        fprintf(stderr, "mags-tool: the job is larger than %d bytes\n", MAX_JOB);
        return 1;
      }
      cap *= 2;
      job = realloc(job, cap + 1);
      if (!job) die("memory");
    }
    ssize_t n = read(0, job + len, cap - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("read the job");
    if (n == 0) break;
    len += (size_t)n;
  }
  job[len] = '\0';
  char *p = job, *end = job + len;
  while (p < end && *p) {
    char *eq = strchr(p, '=');
    size_t n = strlen(p);
    if (eq && eq != p) {
      *eq = '\0';
      if (setenv(p, eq + 1, 1) < 0) die("setenv");
    }
    p += n + 1;
  }
  char *script = p < end ? p + 1 : end;
  if (chdir("/root") < 0 && chdir("/") < 0) die("chdir");
  char *args[] = {"/bin/sh", "-c", script, NULL};
  execv("/bin/sh", args);
  fprintf(stderr, "mags-tool: cannot run /bin/sh: %s\n", strerror(errno));
  return 127;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "launch") == 0) return run_launch();
  if (argc >= 2 && strcmp(argv[1], "pty") == 0) return run_pty(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "connect") == 0) return run_connect(argc - 2, argv + 2);
  fprintf(stderr, "usage: mags-tool pty [--size COLSxROWS] [--control FD] -- PROGRAM [ARG...]\n"
                  "       mags-tool connect PORT\n"
                  "       mags-tool launch\n");
  return 2;
}
