// The fixed Python program envd's filesystem calls and /files run inside the sandbox (as an exec), so that the host
// never opens a name the sandbox controls. Its request is the first line of its stdin (JSON: user paths travel as
// data, never spliced into a shell string); its answer is one JSON line on stdout, `{"ok": …}` or
// `{"error": {"code", "message"}}`, followed for `read` by the file's bytes and for `watch` by one JSON line per
// event. For `write` the rest of stdin is the file's content.
export const HELPER_SCRIPT = String.raw`
import sys, os, json, stat, pwd, grp, shutil, errno, struct, ctypes, select
out = sys.stdout.buffer
def reply(obj):
    out.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n"); out.flush()
def fail(code, message):
    reply({"error": {"code": code, "message": message}}); sys.exit(0)
def oserror(e, path):
    p = json.dumps(path)
    if isinstance(e, FileNotFoundError): fail("not_found", "path %s does not exist" % p)
    if isinstance(e, FileExistsError): fail("already_exists", "path %s already exists" % p)
    if isinstance(e, PermissionError): fail("permission_denied", "permission denied on %s" % p)
    if isinstance(e, NotADirectoryError): fail("invalid_argument", "a component of %s is not a directory" % p)
    if isinstance(e, IsADirectoryError): fail("invalid_argument", "path %s is a directory" % p)
    if e.errno == errno.ENOTEMPTY: fail("invalid_argument", "directory %s is not empty" % p)
    if e.errno == errno.ENOSPC: fail("resource_exhausted", "no space left on the sandbox's disk writing %s" % p)
    fail("unknown", "%s: %s" % (p, e.strerror or str(e)))
def absolute(path):
    if not isinstance(path, str) or path == "" or "\0" in path: fail("invalid_argument", "path must be a non-empty string")
    path = os.path.expanduser(path)
    if not path.startswith("/"): path = os.path.join(os.path.expanduser("~"), path)
    return os.path.normpath(path)
def name_of(uid, table):
    try: return table(uid)[0]
    except KeyError: return str(uid)
def gomode(st):
    s = stat.filemode(st.st_mode)
    return ("L" + s[1:]) if s[0] == "l" else s
def entry(path):
    st = os.lstat(path)
    kind = "FILE_TYPE_UNSPECIFIED"
    target = None
    if stat.S_ISLNK(st.st_mode):
        kind = "FILE_TYPE_SYMLINK"
        try: target = os.path.realpath(path)
        except OSError: target = os.readlink(path)
    elif stat.S_ISDIR(st.st_mode): kind = "FILE_TYPE_DIRECTORY"
    elif stat.S_ISREG(st.st_mode): kind = "FILE_TYPE_FILE"
    e = {"name": os.path.basename(path) or "/", "type": kind, "path": path, "size": str(st.st_size),
         "mode": stat.S_IMODE(st.st_mode), "permissions": gomode(st),
         "owner": name_of(st.st_uid, pwd.getpwuid), "group": name_of(st.st_gid, grp.getgrgid),
         "mtime": [st.st_mtime_ns // 1000000000, st.st_mtime_ns % 1000000000]}
    if target is not None: e["symlinkTarget"] = target
    return e
req = json.loads(sys.stdin.buffer.readline())
op = req.get("op")
try:
    if op == "stat":
        p = absolute(req.get("path")); reply({"ok": entry(p)})
    elif op == "list":
        root = absolute(req.get("path")); depth = max(1, int(req.get("depth") or 1))
        st = os.stat(root)
        if not stat.S_ISDIR(st.st_mode): fail("invalid_argument", "path %s is not a directory" % json.dumps(root))
        entries = []
        def walk(d, level):
            with os.scandir(d) as it:
                names = sorted(x.name for x in it)
            for n in names:
                p = os.path.join(d, n)
                try: e = entry(p)
                except FileNotFoundError: continue
                entries.append(e)
                if level < depth and e["type"] == "FILE_TYPE_DIRECTORY":
                    try: walk(p, level + 1)
                    except PermissionError: pass
                if len(entries) > 100000: fail("resource_exhausted", "more than 100000 entries under %s; list with a smaller depth" % json.dumps(root))
        walk(root, 1)
        reply({"ok": entries})
    elif op == "mkdir":
        p = absolute(req.get("path"))
        if os.path.lexists(p):
            if os.path.isdir(p): fail("already_exists", "directory %s already exists" % json.dumps(p))
            fail("invalid_argument", "path %s already exists and is not a directory" % json.dumps(p))
        os.makedirs(p); reply({"ok": entry(p)})
    elif op == "move":
        s = absolute(req.get("source")); d = absolute(req.get("destination"))
        os.lstat(s)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        os.rename(s, d); reply({"ok": entry(d)})
    elif op == "remove":
        p = absolute(req.get("path"))
        st = os.lstat(p)
        if stat.S_ISDIR(st.st_mode): shutil.rmtree(p)
        else: os.unlink(p)
        reply({"ok": {}})
    elif op == "read":
        p = absolute(req.get("path"))
        if os.path.isdir(p): fail("invalid_argument", "path %s is a directory" % json.dumps(p))
        f = open(p, "rb")
        reply({"ok": {"size": os.fstat(f.fileno()).st_size}})
        while True:
            b = f.read(262144)
            if not b: break
            out.write(b)
        out.flush()
    elif op == "write":
        p = absolute(req.get("path"))
        if os.path.isdir(p): fail("invalid_argument", "path %s is a directory" % json.dumps(p))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        inp = sys.stdin.buffer
        with open(p, "wb") as f:
            while True:
                b = inp.read1(262144)
                if not b: break
                f.write(b)
        reply({"ok": {"name": os.path.basename(p), "type": "file", "path": p}})
    elif op == "watch":
        root = absolute(req.get("path")); recursive = bool(req.get("recursive"))
        if not os.path.isdir(root): os.stat(root); fail("invalid_argument", "path %s is not a directory" % json.dumps(root))
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_CLOEXEC)
        if fd < 0: fail("unknown", "inotify is not available in this sandbox")
        MASK = 0x2 | 0x4 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
        wds = {}
        def add(d):
            wd = libc.inotify_add_watch(fd, d.encode(), MASK)
            if wd >= 0: wds[wd] = d
            if recursive:
                try:
                    with os.scandir(d) as it:
                        for x in it:
                            if x.is_dir(follow_symlinks=False): add(x.path)
                except OSError: pass
        add(root)
        reply({"ok": {}})
        buf = b""
        while True:
            r, _, _ = select.select([fd, sys.stdin], [], [])
            if sys.stdin in r and not os.read(sys.stdin.fileno(), 4096): break
            if fd not in r: continue
            buf += os.read(fd, 65536)
            while len(buf) >= 16:
                wd, mask, cookie, ln = struct.unpack("iIII", buf[:16])
                if len(buf) < 16 + ln: break
                name = buf[16:16 + ln].split(b"\0", 1)[0].decode("utf-8", "surrogateescape"); buf = buf[16 + ln:]
                base = wds.get(wd)
                if base is None or not name: continue
                full = os.path.join(base, name)
                rel = os.path.relpath(full, root)
                kind = None
                if mask & 0x100: kind = "EVENT_TYPE_CREATE"
                elif mask & (0x2 | 0x8): kind = "EVENT_TYPE_WRITE"
                elif mask & 0x200: kind = "EVENT_TYPE_REMOVE"
                elif mask & (0x40 | 0x80): kind = "EVENT_TYPE_RENAME"
                elif mask & 0x4: kind = "EVENT_TYPE_CHMOD"
                if mask & (0x100 | 0x80) and mask & 0x40000000 and recursive: add(full)
                if kind: reply({"name": rel, "type": kind})
    else:
        fail("invalid_argument", "unknown operation")
except OSError as e:
    oserror(e, req.get("path") or req.get("source") or "")
`;

/** The exec command that runs the helper: the fixed program above, quoted once. */
export const HELPER_COMMAND = `exec python3 -c '${HELPER_SCRIPT.replace(/'/g, `'"'"'`)}'`;
