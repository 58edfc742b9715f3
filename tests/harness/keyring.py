"""A private Secret Service: a session bus plus gnome-keyring-daemon.

    with SecretService(tmp_path) as ss:
        subprocess.run([...], env=dict(os.environ, **ss.env))
        ss.store('label', 'secret', service='tokend', account='work')
        assert ss.lookup(service='tokend', account='work') == 'secret'
        ss.lock()      # lookups now find nothing, exactly as if nothing was stored
        ss.unlock()    # no prompt: the master password goes over D-Bus
        ss.kill_daemon()   # the bus stays; org.freedesktop.secrets has no owner
        ss.restart_daemon()

The default collection ('login', created unlocked by `--unlock`) is where
libsecret's SECRET_COLLECTION_DEFAULT stores.  The bus has no service
activation: after kill_daemon() callers get ServiceUnknown at once instead of a
fresh, locked daemon started behind their back (pass activation=True to get
the desktop behaviour).  No X display, so anything that would prompt fails.

`env` is what a client needs: DBUS_SESSION_BUS_ADDRESS only (libsecret and
secret-tool talk D-Bus and nothing else), so env.update(ss.env) leaves a
client's HOME and XDG_RUNTIME_DIR alone.  The daemons run with HOME,
XDG_DATA_HOME and XDG_RUNTIME_DIR (0700) in the workdir (`daemon_env`).
Without a bus address (and no $XDG_RUNTIME_DIR/bus) libsecret fails at once:
"Cannot autolaunch D-Bus without X11 $DISPLAY".

Facts about libsecret 0.20.5 with gnome-keyring 42 (what tokend must handle):
- secret_password_store_sync(schema, SECRET_COLLECTION_DEFAULT, ...) stores
  into 'login' without a prompt; on a locked collection it fails at once with
  SECRET_ERROR_IS_LOCKED "Cannot create an item in a locked collection".
- secret_password_lookup_sync() on a locked collection returns NULL with no
  error, in about 10 ms, without prompting: the same as "not stored".
- Tell them apart with secret_collection_for_alias_sync(service,
  SECRET_COLLECTION_DEFAULT, SECRET_COLLECTION_NONE, ...) and
  secret_collection_get_locked().  secret_service_search_sync(service, schema,
  attrs, SECRET_SEARCH_ALL, ...) (no SECRET_SEARCH_UNLOCK) returns locked items
  with secret_item_get_locked() TRUE, but only while the daemon that locked
  them runs: a daemon that loaded the keyring file locked knows only hashed
  attributes (gkr:compat:hashed:NAME), so that search finds nothing.
- With no daemon on the bus (and no activation) every call fails at once with
  G_DBUS_ERROR_SERVICE_UNKNOWN "The name org.freedesktop.secrets was not
  provided by any .service files"; lookup returns NULL with that error.
- A daemon that is alive but does not answer (SIGSTOP) makes lookup fail
  after 50 s (twice the 25 s D-Bus default) with G_IO_ERROR_TIMED_OUT "Timeout
  was reached": a caller wanting less needs its own cancellable and timer.
- With activation=True a killed daemon is replaced on the next call by
  `gnome-keyring-daemon --start --foreground`, whose login collection is
  locked: lookup returns NULL with no error (about 15 ms).
- Schema lookups match the attribute xdg:schema=<schema name> unless the
  schema has SECRET_SCHEMA_DONT_MATCH_NAME; secret-tool store adds no
  xdg:schema (though a replaced item may come out with
  xdg:schema=org.freedesktop.Secret.Generic), so seed items for a schema with
  store(..., **{'xdg:schema': NAME}).
- `secret-tool lock --collection=login` locks but then crashes (SIGSEGV, or
  "double free or corruption" for names that do not exist); lock() uses
  Service.Lock instead.
"""

import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

BUS_NAME = 'org.freedesktop.secrets'
SERVICE_PATH = '/org/freedesktop/secrets'
DEFAULT_ALIAS = '/org/freedesktop/secrets/aliases/default'
START_TIMEOUT = 60  # bounded, and generous: a peer starts slowly on a loaded 2-core machine
CALL_TIMEOUT_MS = 5000

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  {servicedirs}
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class _GError(ctypes.Structure):
    _fields_ = [('domain', ctypes.c_uint32), ('code', ctypes.c_int),
                ('message', ctypes.c_char_p)]


class _GDBus:
    """Just enough of GIO's D-Bus client, through ctypes: one connection, so
    that a Secret Service session opened on it can be used by a later call."""

    def __init__(self, address):
        P, S = ctypes.c_void_p, ctypes.c_char_p
        self.gio = gio = ctypes.CDLL('libgio-2.0.so.0')
        self.glib = glib = ctypes.CDLL('libglib-2.0.so.0')
        gio.g_dbus_connection_new_for_address_sync.restype = P
        gio.g_dbus_connection_new_for_address_sync.argtypes = [S, ctypes.c_int, P, P,
                                                               ctypes.POINTER(P)]
        gio.g_dbus_connection_call_sync.restype = P
        gio.g_dbus_connection_call_sync.argtypes = [P, S, S, S, S, P, P, ctypes.c_int,
                                                    ctypes.c_int, P, ctypes.POINTER(P)]
        gio.g_dbus_connection_close_sync.argtypes = [P, P, ctypes.POINTER(P)]
        glib.g_variant_parse.restype = P
        glib.g_variant_parse.argtypes = [P, S, P, P, ctypes.POINTER(P)]
        glib.g_variant_get_type_string.restype = S
        glib.g_variant_get_type_string.argtypes = [P]
        glib.g_variant_n_children.restype = ctypes.c_size_t
        glib.g_variant_n_children.argtypes = [P]
        glib.g_variant_get_child_value.restype = P
        glib.g_variant_get_child_value.argtypes = [P, ctypes.c_size_t]
        glib.g_variant_get_variant.restype = P
        glib.g_variant_get_variant.argtypes = [P]
        glib.g_variant_get_string.restype = S
        glib.g_variant_get_string.argtypes = [P, P]
        glib.g_variant_get_boolean.restype = ctypes.c_int
        glib.g_variant_get_boolean.argtypes = [P]
        glib.g_variant_get_uint64.restype = ctypes.c_uint64
        glib.g_variant_get_uint64.argtypes = [P]
        glib.g_variant_get_uint32.restype = ctypes.c_uint32
        glib.g_variant_get_uint32.argtypes = [P]
        glib.g_variant_get_byte.restype = ctypes.c_ubyte
        glib.g_variant_get_byte.argtypes = [P]
        glib.g_variant_unref.argtypes = [P]
        glib.g_error_free.argtypes = [P]
        flags = 1 | 8  # AUTHENTICATION_CLIENT | MESSAGE_BUS_CONNECTION
        err = P()
        self.conn = gio.g_dbus_connection_new_for_address_sync(
            address.encode(), flags, None, None, ctypes.byref(err))
        self._check(err)

    def _check(self, err):
        if err.value:
            message = ctypes.cast(err, ctypes.POINTER(_GError)).contents.message.decode()
            self.glib.g_error_free(err)
            raise DBusError(message)

    def call(self, dest, path, iface, method, args='()'):
        """Calls a method; args is GVariant text; returns the reply as Python."""
        err = ctypes.c_void_p()
        params = self.glib.g_variant_parse(None, args.encode(), None, None, ctypes.byref(err))
        self._check(err)
        reply = self.gio.g_dbus_connection_call_sync(
            self.conn, dest.encode(), path.encode(), iface.encode(), method.encode(),
            params, None, 0, CALL_TIMEOUT_MS, None, ctypes.byref(err))
        self._check(err)
        try:
            return self._unpack(reply)
        finally:
            self.glib.g_variant_unref(reply)

    def get_property(self, dest, path, iface, name):
        return self.call(dest, path, 'org.freedesktop.DBus.Properties', 'Get',
                         f"('{iface}', '{name}')")[0]

    def _unpack(self, v):
        g = self.glib
        t = g.g_variant_get_type_string(v).decode()
        if t in ('s', 'o', 'g'):
            return g.g_variant_get_string(v, None).decode()
        if t == 'b':
            return bool(g.g_variant_get_boolean(v))
        if t == 't':
            return g.g_variant_get_uint64(v)
        if t == 'u':
            return g.g_variant_get_uint32(v)
        if t == 'y':
            return g.g_variant_get_byte(v)
        if t == 'v':
            inner = g.g_variant_get_variant(v)
            try:
                return self._unpack(inner)
            finally:
                g.g_variant_unref(inner)
        children = []
        for i in range(g.g_variant_n_children(v)):
            child = g.g_variant_get_child_value(v, i)
            try:
                children.append(self._unpack(child))
            finally:
                g.g_variant_unref(child)
        if t.startswith('a{'):
            return dict(children)
        return tuple(children) if t.startswith(('(', '{')) else children

    def close(self):
        if self.conn:
            self.gio.g_dbus_connection_close_sync(self.conn, None, None)
            ctypes.CDLL('libgobject-2.0.so.0').g_object_unref(ctypes.c_void_p(self.conn))
            self.conn = None


class DBusError(RuntimeError):
    pass


class SecretService:
    def __init__(self, workdir, password='keyring-test-password', activation=False):
        self.workdir = Path(workdir)
        self.password = password
        self.activation = activation
        self.home = self.workdir / 'home'
        self.data_home = self.workdir / 'data'
        self.runtime_dir = self.workdir / 'runtime'
        self.socket = self.workdir / 'bus'
        self.log_path = self.workdir / 'keyring.log'
        self.bus_proc = None
        self.daemon = None
        self.startup_seconds = None
        self.env = {}
        self.daemon_env = {}
        self._dbus = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # life cycle ----------------------------------------------------------

    def start(self):
        for d in (self.home, self.data_home, self.runtime_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.runtime_dir.chmod(0o700)
        started = time.monotonic()
        try:
            self._start_bus()
            self.restart_daemon()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _start_bus(self):
        dirs = '<standard_session_servicedirs/>' if self.activation else ''
        config = self.workdir / 'bus.conf'
        config.write_text(BUS_CONFIG.format(socket=self.socket, servicedirs=dirs))
        base = {'HOME': str(self.home), 'XDG_DATA_HOME': str(self.data_home),
                'XDG_RUNTIME_DIR': str(self.runtime_dir)}
        with open(self.log_path, 'ab') as log:
            self.bus_proc = subprocess.Popen(
                ['dbus-daemon', '--nofork', '--nopidfile', '--nosyslog',
                 f'--config-file={config}', '--print-address=1'],
                env=dict(os.environ, **base), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=log)
        address = self.bus_proc.stdout.readline().decode().strip()
        if not address:
            raise RuntimeError(f'dbus-daemon did not start: {self.log_path.read_text()}')
        self.env = {'DBUS_SESSION_BUS_ADDRESS': address}
        self.daemon_env = dict(base, **self.env)
        self._dbus = _GDBus(address)

    def restart_daemon(self, unlock=True):
        """Starts gnome-keyring-daemon (again), unlocking the login collection
        with the password (created with it on first start).  unlock=False
        starts it with the collection locked, as after a login without the
        keyring password: items then show only hashed attributes."""
        self.kill_daemon()
        args = ['gnome-keyring-daemon', '--foreground', '--components=secrets']
        with open(self.log_path, 'ab') as log:
            self.daemon = subprocess.Popen(
                args + (['--unlock'] if unlock else []),
                env=dict(os.environ, **self.daemon_env), stdin=subprocess.PIPE,
                stdout=log, stderr=log)
        if unlock:
            self.daemon.stdin.write(self.password.encode())
        self.daemon.stdin.close()
        self._wait_ready(time.monotonic() + START_TIMEOUT, locked=not unlock)

    def _wait_ready(self, deadline, locked=False):
        last = None
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise RuntimeError(f'gnome-keyring-daemon exited with {self.daemon.returncode}: '
                                   f'{self.log_path.read_text()[-2000:]}')
            try:
                if self.owner() and self.is_locked() == locked:
                    return
            except DBusError as e:
                last = e
            time.sleep(0.02)
        raise RuntimeError(f'Secret Service not ready after {START_TIMEOUT} s ({last}); '
                           f'see {self.log_path}')

    def kill_daemon(self):
        """SIGKILL gnome-keyring-daemon (also one the bus activated); the bus
        stays up."""
        if self.daemon and self.daemon.poll() is None:
            self.daemon.kill()
            self.daemon.wait()
        if self._dbus:
            self._kill_owner(signal.SIGKILL)

    def _kill_owner(self, sig):
        """Signals whoever owns the name (an activated daemon is a child of
        init, not ours) and waits until the name is released."""
        owner = self.owner()
        if owner:
            pid = self._dbus.call('org.freedesktop.DBus', '/org/freedesktop/DBus',
                                  'org.freedesktop.DBus', 'GetConnectionUnixProcessID',
                                  f"('{owner}',)")[0]
            os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while self.owner() and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self):
        _end(self.daemon)
        if self._dbus:
            self._kill_owner(signal.SIGTERM)
            self._dbus.close()
            self._dbus = None
        _end(self.bus_proc)
        if self.bus_proc:
            self.bus_proc.stdout.close()
        self.daemon = self.bus_proc = None

    # D-Bus ------------------------------------------------------------------

    def owner(self):
        """The unique bus name owning org.freedesktop.secrets, or None."""
        try:
            return self._dbus.call('org.freedesktop.DBus', '/org/freedesktop/DBus',
                                   'org.freedesktop.DBus', 'GetNameOwner', f"('{BUS_NAME}',)")[0]
        except DBusError:
            return None

    def default_collection(self):
        """Object path of the default collection, or None."""
        path = self._dbus.call(BUS_NAME, SERVICE_PATH, 'org.freedesktop.Secret.Service',
                               'ReadAlias', "('default',)")[0]
        return None if path == '/' else path

    def is_locked(self):
        path = self.default_collection()
        if path is None:
            raise DBusError('no default collection')
        return self._dbus.get_property(BUS_NAME, path, 'org.freedesktop.Secret.Collection',
                                       'Locked')

    def lock(self):
        self._dbus.call(BUS_NAME, SERVICE_PATH, 'org.freedesktop.Secret.Service', 'Lock',
                        f"([objectpath '{DEFAULT_ALIAS}'],)")
        if not self.is_locked():
            raise RuntimeError('the default collection did not lock')

    def unlock(self):
        """Unlocks the default collection with the master password, without a
        prompt (gnome-keyring's internal interface, over a 'plain' session)."""
        session = self._dbus.call(BUS_NAME, SERVICE_PATH, 'org.freedesktop.Secret.Service',
                                  'OpenSession', "('plain', <''>)")[1]
        secret = list(self.password.encode())
        try:
            self._dbus.call(
                BUS_NAME, SERVICE_PATH,
                'org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface',
                'UnlockWithMasterPassword',
                f"(objectpath '{self.default_collection()}', "
                f"(objectpath '{session}', @ay [], @ay {secret}, 'text/plain'))")
        finally:
            self._dbus.call(BUS_NAME, session, 'org.freedesktop.Secret.Session', 'Close')
        if self.is_locked():
            raise RuntimeError('the default collection did not unlock')

    def items(self):
        """Every item of the default collection (readable while locked):
        dicts with path, label, locked and attributes (including libsecret's
        'xdg:schema')."""
        path = self.default_collection()
        result = []
        for item in self._dbus.get_property(BUS_NAME, path, 'org.freedesktop.Secret.Collection',
                                            'Items'):
            props = self._dbus.call(BUS_NAME, item, 'org.freedesktop.DBus.Properties', 'GetAll',
                                    "('org.freedesktop.Secret.Item',)")[0]
            result.append({'path': item, 'label': props['Label'], 'locked': props['Locked'],
                           'attributes': props['Attributes']})
        return result

    # secret-tool -------------------------------------------------------------

    def secret_tool(self, *args, input=None, timeout=10):
        return subprocess.run(['secret-tool', *args], input=input, capture_output=True,
                              text=True, timeout=timeout, env=dict(os.environ, **self.env))

    def store(self, label, secret, **attributes):
        """Stores into the default collection (the secret goes over stdin).
        Pass an 'xdg:schema' attribute for items a schema lookup must find."""
        r = self.secret_tool('store', f'--label={label}', *_flatten(attributes), input=secret)
        if r.returncode != 0:
            raise RuntimeError(f'secret-tool store failed: {r.stderr.strip()}')

    def lookup(self, **attributes):
        """The secret, or None when nothing matches or the collection is locked."""
        r = self.secret_tool('lookup', *_flatten(attributes))
        return r.stdout if r.returncode == 0 else None

    def clear(self, **attributes):
        self.secret_tool('clear', *_flatten(attributes))


def _end(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _flatten(attributes):
    return [s for kv in attributes.items() for s in kv]
