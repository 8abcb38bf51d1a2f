/*
 * mags-hostd: the agent's host helper. A long-lived root child of the agent that makes and removes what a sandbox
 * needs on the host with system calls, so that a sandbox costs no program per step (mount, umount, ip, cp, sh):
 * loop-mounted layer disks, overlay roots, network namespaces with their veth link.
 *
 * Started as: mags-hostd --sandboxes DIR --templates DIR --netns-prefix PREFIX
 * Its only channel is the stdin/stdout pipe pair the agent made (nothing else can write to it: it opens no socket
 * nor path to listen on, and dies with the agent). One request per line, fields separated by tabs:
 *   ID\tOP\tARG...        answered by   ID\t0   or   ID\tERRNO\tSENTENCE
 * Every path it accepts must lie under --sandboxes (the templates of copy-layer under --templates), is checked
 * lexically (absolute, no "..", no empty or "." component) and opened with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) from that directory, so neither a request nor a symlink a sandbox made leads elsewhere.
 * Network namespaces are only those named PREFIX[a-z0-9]+ in /run/netns.
 *
 *   copy-layer TEMPLATE IMAGE        sparse copy (data extents only) of a layer template to a new file
 *   mount-layer IMAGE DIR            attach IMAGE to a free loop device (autoclear) and mount its ext4 at DIR
 *                                    (nosuid,nodev,noatime; no barrier, no itable init: the layer is thrown away)
 *   bind-layer LAYER DIR             bind a mounted layer at DIR (a sandbox's fs/), nosuid,nodev,noatime
 *   mount-overlay DIR OPTIONS        mount an overlay at DIR/rootfs, the option paths relative to DIR
 *   umount PATH                      unmount PATH (lazily when busy); not mounted is not an error
 *   netns-add NAME [HOSTIF HOSTIP SANDBOXIP]
 *                                    a new network namespace bound at /run/netns/NAME, lo up; with a link, a veth
 *                                    pair HOSTIF (HOSTIP/30, up) and eth0 inside (SANDBOXIP/30, up, default route
 *                                    via HOSTIP)
 *   netns-del NAME                   unbind and remove /run/netns/NAME (the namespace and its veth die with it)
 *
 * Built static by scripts/build-tool.sh.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/loop.h>
#include <linux/netlink.h>
#include <linux/openat2.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NETNS_DIR "/run/netns"
#define MAX_ARGS 8

static const char *sandboxes, *templates, *netns_prefix;
static int host_netns = -1;
static char err_text[512];
/* A note sent with a success ("lazy": an unmount left to finish when the mount is no longer busy). */
static const char *note = "";

static int fail(int e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err_text, sizeof err_text, fmt, ap);
  va_end(ap);
  return e ? e : EINVAL;
}

/* The part of `p` below `root` if `p` is a clean absolute path strictly under it; NULL otherwise. */
static const char *below(const char *root, const char *p) {
  size_t n = strlen(root);
  if (strncmp(p, root, n) != 0 || p[n] != '/' || p[n + 1] == '\0') return NULL;
  const char *rel = p + n + 1;
  for (const char *c = rel; *c;) {
    const char *end = strchr(c, '/');
    size_t len = end ? (size_t)(end - c) : strlen(c);
    if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.')) return NULL;
    c += len;
    if (*c == '/') c++;
  }
  return rel;
}

/* Opens `rel` beneath `root`, never through a symlink; -1 with errno set otherwise. */
static int open_beneath(const char *root, const char *rel, int flags, mode_t mode) {
  int dir = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return -1;
  struct open_how how = {
      .flags = (unsigned long long)(flags | O_CLOEXEC),
      .mode = (flags & O_CREAT) ? mode : 0,
      .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  int fd = (int)syscall(SYS_openat2, dir, rel, &how, sizeof how);
  int e = errno;
  close(dir);
  errno = e;
  return fd;
}

static int open_under(const char *root, const char *p, int flags, mode_t mode, int *fd) {
  const char *rel = below(root, p);
  if (!rel) return fail(EPERM, "%s is not a path under %s", p, root);
  *fd = open_beneath(root, rel, flags, mode);
  if (*fd < 0) return fail(errno, "cannot open %s: %s", p, strerror(errno));
  return 0;
}

static void fd_path(char *buf, size_t n, int fd) { snprintf(buf, n, "/proc/self/fd/%d", fd); }

static int copy_layer(const char *src, const char *dst) {
  int in, out, r;
  if ((r = open_under(templates, src, O_RDONLY, 0, &in))) return r;
  if ((r = open_under(sandboxes, dst, O_WRONLY | O_CREAT | O_EXCL, 0600, &out))) {
    close(in);
    return r;
  }
  struct stat st;
  if (fstat(in, &st) < 0 || ftruncate(out, st.st_size) < 0) {
    r = fail(errno, "cannot size %s: %s", dst, strerror(errno));
    goto done;
  }
  for (off_t at = 0; at < st.st_size;) {
    off_t data = lseek(in, at, SEEK_DATA);
    if (data < 0) break; /* ENXIO: only a hole is left */
    off_t hole = lseek(in, data, SEEK_HOLE);
    if (hole < 0) hole = st.st_size;
    off_t from = data, to = data;
    while (from < hole) {
      ssize_t n = copy_file_range(in, &from, out, &to, (size_t)(hole - from), 0);
      if (n <= 0) {
        r = fail(n < 0 ? errno : EIO, "cannot copy %s: %s", src, n < 0 ? strerror(errno) : "short copy");
        goto done;
      }
    }
    at = hole;
  }
  r = 0;
done:
  close(in);
  close(out);
  return r;
}

static int mount_layer(const char *image, const char *dir) {
  int img, target, r;
  if ((r = open_under(sandboxes, image, O_RDWR, 0, &img))) return r;
  if ((r = open_under(sandboxes, dir, O_PATH | O_DIRECTORY, 0, &target))) {
    close(img);
    return r;
  }
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  int loop = -1;
  char dev[64];
  if (ctl < 0) {
    r = fail(errno, "cannot open /dev/loop-control: %s", strerror(errno));
    goto done;
  }
  for (int tries = 0; tries < 64; tries++) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0) {
      r = fail(errno, "no free loop device: %s", strerror(errno));
      goto done;
    }
    snprintf(dev, sizeof dev, "/dev/loop%d", n);
    loop = open(dev, O_RDWR | O_CLOEXEC);
    if (loop < 0) continue;
    struct loop_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fd = (unsigned)img;
    cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    if (ioctl(loop, LOOP_CONFIGURE, &cfg) == 0) break;
    int e = errno;
    close(loop);
    loop = -1;
    if (e != EBUSY) {
      r = fail(e, "cannot attach %s to %s: %s", image, dev, strerror(e));
      goto done;
    }
    /* taken by someone else meanwhile: ask again */
  }
  if (loop < 0) {
    r = fail(EBUSY, "no free loop device after 64 tries");
    goto done;
  }
  char where[64];
  fd_path(where, sizeof where, target);
  if (mount(dev, where, "ext4", MS_NOSUID | MS_NODEV | MS_NOATIME, "noinit_itable,nobarrier") < 0)
    r = fail(errno, "cannot mount %s at %s: %s", image, dir, strerror(errno));
  else
    r = 0;
  /* Closing the loop device detaches it now if the mount failed, else once the layer is unmounted. */
done:
  if (loop >= 0) close(loop);
  if (ctl >= 0) close(ctl);
  close(img);
  close(target);
  return r;
}

/* Binds a mounted layer at a sandbox's fs/ (nosuid,nodev,noatime, as the layer's own mount). */
static int bind_layer(const char *src, const char *dst) {
  int from, to, r;
  if ((r = open_under(sandboxes, src, O_PATH | O_DIRECTORY, 0, &from))) return r;
  if ((r = open_under(sandboxes, dst, O_PATH | O_DIRECTORY, 0, &to))) {
    close(from);
    return r;
  }
  char a[64], b[64];
  fd_path(a, sizeof a, from);
  fd_path(b, sizeof b, to);
  if (mount(a, b, NULL, MS_BIND, NULL) < 0) {
    r = fail(errno, "cannot bind %s at %s: %s", src, dst, strerror(errno));
  } else {
    /* The new mount, as the path now resolves: its own flags are set by a remount. */
    int m = -1;
    if (open_under(sandboxes, dst, O_PATH | O_DIRECTORY, 0, &m)) m = -1;
    char c[64];
    if (m >= 0) fd_path(c, sizeof c, m);
    if (m < 0 || mount(NULL, c, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOATIME, NULL) < 0) {
      r = fail(errno, "cannot make %s nosuid,nodev: %s", dst, strerror(errno));
      umount2(dst, MNT_DETACH | UMOUNT_NOFOLLOW); /* never left without its flags */
    } else {
      r = 0;
    }
    if (m >= 0) close(m);
  }
  close(from);
  close(to);
  return r;
}

/* Overlay options: only these keys, and paths relative to the sandbox's directory, without "..". */
static int check_overlay_options(const char *opts) {
  char copy[4096];
  if (strlen(opts) >= sizeof copy) return fail(EINVAL, "overlay options too long");
  strcpy(copy, opts);
  char *save = NULL;
  for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(o, '=');
    if (!eq) {
      if (strcmp(o, "nosuid") && strcmp(o, "nodev")) return fail(EINVAL, "overlay option %s is not allowed", o);
      continue;
    }
    *eq = '\0';
    const char *v = eq + 1;
    if (!strcmp(o, "xino")) continue;
    if (strcmp(o, "lowerdir") && strcmp(o, "upperdir") && strcmp(o, "workdir"))
      return fail(EINVAL, "overlay option %s is not allowed", o);
    if (v[0] == '/' || strstr(v, "..")) return fail(EPERM, "overlay %s=%s is not a path under the sandbox", o, v);
  }
  return 0;
}

static int mount_overlay(const char *dir, const char *opts) {
  int d, root, r;
  if ((r = check_overlay_options(opts))) return r;
  if ((r = open_under(sandboxes, dir, O_PATH | O_DIRECTORY, 0, &d))) return r;
  root = open_beneath(dir, "rootfs", O_PATH | O_DIRECTORY, 0);
  if (root < 0) {
    r = fail(errno, "cannot open %s/rootfs: %s", dir, strerror(errno));
    close(d);
    return r;
  }
  char where[64], flags[4096];
  fd_path(where, sizeof where, root);
  /* nosuid and nodev are mount flags (always set), not overlay options. */
  flags[0] = '\0';
  char copy[4096], *save = NULL;
  snprintf(copy, sizeof copy, "%s", opts);
  for (char *o = strtok_r(copy, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
    if (!strcmp(o, "nosuid") || !strcmp(o, "nodev")) continue;
    if (flags[0]) strncat(flags, ",", sizeof flags - strlen(flags) - 1);
    strncat(flags, o, sizeof flags - strlen(flags) - 1);
  }
  if (fchdir(d) < 0) {
    r = fail(errno, "cannot enter %s: %s", dir, strerror(errno));
  } else if (mount("mags-root", where, "overlay", MS_NOSUID | MS_NODEV, flags) < 0) {
    r = fail(errno, "cannot mount the overlay at %s/rootfs: %s", dir, strerror(errno));
  } else {
    r = 0;
  }
  if (chdir("/") < 0) r = r ? r : errno;
  close(root);
  close(d);
  return r;
}

static int do_umount(const char *p) {
  if (!below(sandboxes, p)) return fail(EPERM, "%s is not a path under %s", p, sandboxes);
  if (umount2(p, UMOUNT_NOFOLLOW) == 0) return 0;
  if (errno == EINVAL || errno == ENOENT) return 0; /* not mounted (any more) */
  if (errno == EBUSY && umount2(p, UMOUNT_NOFOLLOW | MNT_DETACH) == 0) {
    note = "lazy";
    return 0;
  }
  return fail(errno, "cannot unmount %s: %s", p, strerror(errno));
}

static int netns_name_ok(const char *name) {
  size_t n = strlen(netns_prefix);
  if (strncmp(name, netns_prefix, n) != 0 || !name[n] || strlen(name) > 64) return 0;
  for (const char *c = name + n; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9'))) return 0;
  return 1;
}

/* ---- rtnetlink ---- */

/* One request at a time is built here (the helper is single-threaded). */
static char req_buf[2048] __attribute__((aligned(NLMSG_ALIGNTO)));

static struct rtattr *add_attr(struct nlmsghdr *h, unsigned short type, const void *data, size_t len) {
  struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
  a->rta_type = type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  if (len) memcpy(RTA_DATA(a), data, len);
  h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
  return a;
}

static void end_nest(struct nlmsghdr *h, struct rtattr *a) {
  a->rta_len = (unsigned short)((char *)h + h->nlmsg_len - (char *)a);
}

/* Sends one request and reads its acknowledgement (or, with `ifindex`, the link it asked for). */
static int nl_talk(int sock, struct nlmsghdr *h, int *ifindex) {
  static unsigned seq;
  h->nlmsg_seq = ++seq;
  h->nlmsg_flags |= NLM_F_REQUEST | (ifindex ? 0 : NLM_F_ACK);
  if (send(sock, h, h->nlmsg_len, 0) < 0) return errno;
  char buf[8192];
  for (;;) {
    ssize_t n = recv(sock, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    for (struct nlmsghdr *r = (struct nlmsghdr *)buf; NLMSG_OK(r, (unsigned)n); r = NLMSG_NEXT(r, n)) {
      if (r->nlmsg_seq != h->nlmsg_seq) continue;
      if (r->nlmsg_type == NLMSG_ERROR) {
        int e = -((struct nlmsgerr *)NLMSG_DATA(r))->error;
        return e;
      }
      if (ifindex && r->nlmsg_type == RTM_NEWLINK) {
        *ifindex = ((struct ifinfomsg *)NLMSG_DATA(r))->ifi_index;
        return 0;
      }
    }
  }
}

static struct nlmsghdr *start(unsigned short type, unsigned short flags, size_t body) {
  memset(req_buf, 0, sizeof req_buf);
  struct nlmsghdr *h = (struct nlmsghdr *)(void *)req_buf;
  h->nlmsg_len = (unsigned)NLMSG_LENGTH(body);
  h->nlmsg_type = type;
  h->nlmsg_flags = flags;
  return h;
}

static int link_index(int sock, const char *name, int *index) {
  struct nlmsghdr *h = start(RTM_GETLINK, 0, sizeof(struct ifinfomsg));
  add_attr(h, IFLA_IFNAME, name, strlen(name) + 1);
  return nl_talk(sock, h, index);
}

static int link_up(int sock, int index) {
  struct nlmsghdr *h = start(RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
  struct ifinfomsg *i = NLMSG_DATA(h);
  i->ifi_index = index;
  i->ifi_flags = IFF_UP;
  i->ifi_change = IFF_UP;
  return nl_talk(sock, h, NULL);
}

static int add_addr(int sock, int index, struct in_addr a) {
  struct nlmsghdr *h = start(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifaddrmsg));
  struct ifaddrmsg *m = NLMSG_DATA(h);
  m->ifa_family = AF_INET;
  m->ifa_prefixlen = 30;
  m->ifa_index = (unsigned)index;
  add_attr(h, IFA_LOCAL, &a, 4);
  add_attr(h, IFA_ADDRESS, &a, 4);
  return nl_talk(sock, h, NULL);
}

static int add_default_route(int sock, struct in_addr gw) {
  struct nlmsghdr *h = start(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct rtmsg));
  struct rtmsg *r = NLMSG_DATA(h);
  r->rtm_family = AF_INET;
  r->rtm_table = RT_TABLE_MAIN;
  r->rtm_protocol = RTPROT_BOOT;
  r->rtm_scope = RT_SCOPE_UNIVERSE;
  r->rtm_type = RTN_UNICAST;
  add_attr(h, RTA_GATEWAY, &gw, 4);
  return nl_talk(sock, h, NULL);
}

static int add_veth(int sock, const char *host_if, int ns_fd) {
  struct nlmsghdr *h = start(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct ifinfomsg));
  add_attr(h, IFLA_IFNAME, host_if, strlen(host_if) + 1);
  struct rtattr *info = add_attr(h, IFLA_LINKINFO, NULL, 0);
  add_attr(h, IFLA_INFO_KIND, "veth", 4);
  struct rtattr *data = add_attr(h, IFLA_INFO_DATA, NULL, 0);
  struct rtattr *peer = add_attr(h, VETH_INFO_PEER, NULL, 0);
  h->nlmsg_len += sizeof(struct ifinfomsg); /* the peer's ifinfomsg, zeroed */
  add_attr(h, IFLA_IFNAME, "eth0", 5);
  add_attr(h, IFLA_NET_NS_FD, &ns_fd, 4);
  end_nest(h, peer);
  end_nest(h, data);
  end_nest(h, info);
  return nl_talk(sock, h, NULL);
}

static int rtnl(void) { return socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE); }

static int netns_add(char **a, int n) {
  const char *name = a[0];
  if (!netns_name_ok(name)) return fail(EPERM, "%s is not a network namespace name of this agent", name);
  struct in_addr host_ip, sandbox_ip;
  const char *host_if = NULL;
  if (n == 4) {
    host_if = a[1];
    if (strlen(host_if) >= IFNAMSIZ || strchr(host_if, '/')) return fail(EINVAL, "bad interface name %s", host_if);
    if (inet_pton(AF_INET, a[2], &host_ip) != 1 || inet_pton(AF_INET, a[3], &sandbox_ip) != 1)
      return fail(EINVAL, "bad addresses %s %s", a[2], a[3]);
  } else if (n != 1) {
    return fail(EINVAL, "netns-add takes a name, or a name, an interface and two addresses");
  }
  char file[128];
  snprintf(file, sizeof file, NETNS_DIR "/%s", name);
  int f = open(file, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0);
  if (f < 0) return fail(errno, "cannot create %s: %s", file, strerror(errno));
  close(f);
  int r = 0, inside = -1, ns = -1;
  if (unshare(CLONE_NEWNET) < 0) {
    r = fail(errno, "cannot make a network namespace: %s", strerror(errno));
    unlink(file);
    return r;
  }
  if (mount("/proc/thread-self/ns/net", file, NULL, MS_BIND, NULL) < 0) r = fail(errno, "cannot bind %s: %s", file, strerror(errno));
  /* A netlink socket made now works in the new namespace for as long as it is open. */
  if (!r && (inside = rtnl()) < 0) r = fail(errno, "netlink: %s", strerror(errno));
  if (setns(host_netns, CLONE_NEWNET) < 0) {
    /* cannot get back: this process is useless now */
    fprintf(stderr, "mags-hostd: cannot return to the host's network namespace: %s\n", strerror(errno));
    _exit(1);
  }
  int lo = 0, eth = 0;
  if (!r && (r = link_index(inside, "lo", &lo)) == 0) r = link_up(inside, lo);
  if (r && !err_text[0]) fail(r, "cannot bring lo up in %s: %s", name, strerror(r));
  if (!r && host_if) {
    int host = rtnl(), hi = 0;
    ns = open(file, O_RDONLY | O_CLOEXEC);
    if (host < 0 || ns < 0) r = fail(errno, "cannot open %s: %s", file, strerror(errno));
    if (!r && (r = add_veth(host, host_if, ns))) fail(r, "cannot make veth %s: %s", host_if, strerror(r));
    if (!r && (r = link_index(host, host_if, &hi))) fail(r, "no link %s: %s", host_if, strerror(r));
    if (!r && (r = add_addr(host, hi, host_ip))) fail(r, "cannot address %s: %s", host_if, strerror(r));
    if (!r && (r = link_up(host, hi))) fail(r, "cannot bring %s up: %s", host_if, strerror(r));
    if (!r && (r = link_index(inside, "eth0", &eth))) fail(r, "no eth0 in %s: %s", name, strerror(r));
    if (!r && (r = add_addr(inside, eth, sandbox_ip))) fail(r, "cannot address eth0: %s", strerror(r));
    if (!r && (r = link_up(inside, eth))) fail(r, "cannot bring eth0 up: %s", strerror(r));
    if (!r && (r = add_default_route(inside, host_ip))) fail(r, "cannot add the default route: %s", strerror(r));
    if (host >= 0) close(host);
  }
  /* Every reference to the namespace but its bind mount is dropped, so removing that ends it. */
  if (inside >= 0) close(inside);
  if (ns >= 0) close(ns);
  if (r) {
    umount2(file, MNT_DETACH);
    unlink(file);
  }
  return r;
}

static int netns_del(const char *name) {
  if (!netns_name_ok(name)) return fail(EPERM, "%s is not a network namespace name of this agent", name);
  char file[128];
  snprintf(file, sizeof file, NETNS_DIR "/%s", name);
  if (umount2(file, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && errno != EINVAL && errno != ENOENT)
    return fail(errno, "cannot unbind %s: %s", file, strerror(errno));
  if (unlink(file) < 0 && errno != ENOENT) return fail(errno, "cannot remove %s: %s", file, strerror(errno));
  return 0;
}

/* /run/netns as `ip netns` makes it: a shared mount, so a namespace bound in it is seen by every mount namespace. */
static void prepare_netns_dir(void) {
  mkdir("/run", 0755);
  mkdir(NETNS_DIR, 0755);
  if (mount("", NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == 0) return;
  if (errno == EINVAL && mount(NETNS_DIR, NETNS_DIR, "none", MS_BIND | MS_REC, NULL) == 0)
    mount("", NETNS_DIR, "none", MS_SHARED | MS_REC, NULL);
}

static int handle(char **a, int n) {
  const char *op = a[0];
  err_text[0] = '\0';
  note = "";
  if (!strcmp(op, "copy-layer") && n == 3) return copy_layer(a[1], a[2]);
  if (!strcmp(op, "mount-layer") && n == 3) return mount_layer(a[1], a[2]);
  if (!strcmp(op, "mount-overlay") && n == 3) return mount_overlay(a[1], a[2]);
  if (!strcmp(op, "bind-layer") && n == 3) return bind_layer(a[1], a[2]);
  if (!strcmp(op, "umount") && n == 2) return do_umount(a[1]);
  if (!strcmp(op, "netns-add") && n >= 2) return netns_add(a + 1, n - 1);
  if (!strcmp(op, "netns-del") && n == 2) return netns_del(a[1]);
  return fail(EINVAL, "unknown request %s with %d arguments", op, n - 1);
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--sandboxes")) sandboxes = argv[i + 1];
    else if (!strcmp(argv[i], "--templates")) templates = argv[i + 1];
    else if (!strcmp(argv[i], "--netns-prefix")) netns_prefix = argv[i + 1];
  }
  if (!sandboxes || !templates || !netns_prefix || sandboxes[0] != '/' || templates[0] != '/' || !netns_prefix[0]) {
    fprintf(stderr, "usage: mags-hostd --sandboxes DIR --templates DIR --netns-prefix PREFIX\n");
    return 2;
  }
  /* Nothing but the agent's three pipes: a descriptor the agent's process leaked to it is closed. */
  syscall(SYS_close_range, 3U, ~0U, 0U);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 1; /* the agent is already gone */
  signal(SIGPIPE, SIG_IGN);
  host_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (host_netns < 0) return 1;
  prepare_netns_dir();
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, stdin)) > 0) {
    if (line[len - 1] == '\n') line[--len] = '\0';
    char *fields[MAX_ARGS + 2];
    int n = 0;
    for (char *f = line, *tab; n < MAX_ARGS + 2; f = tab + 1) {
      fields[n++] = f;
      if (!(tab = strchr(f, '\t'))) break;
      *tab = '\0';
    }
    if (n < 2) continue;
    int e = handle(fields + 1, n - 1);
    if (e) {
      for (char *c = err_text; *c; c++)
        if (*c == '\n' || *c == '\t') *c = ' ';
      printf("%s\t%d\t%s\n", fields[0], e, err_text[0] ? err_text : strerror(e));
    } else {
      printf("%s\t0\t%s\n", fields[0], note);
    }
    fflush(stdout);
  }
  return 0;
}
