"""How the functions' containers reach the local stack, which listens on the host's
127.0.0.1 only, at the same addresses as under `make dev` (http://127.0.0.1:<port>;
the code accepts plain-http Stripe on loopback only).

`sam local` starts each function's container on Docker's own network, with the
Runtime Interface Emulator's port published on 127.0.0.1; it never gives a
container the host's network (`--docker-network host` only skips connecting it to
another network). So this process watches Docker's events for the containers
`sam local` starts (label sam.cli.container.type=lambda), and as each starts,
opens in the container's network namespace (setns, in a thread of its own that
ends) a listener on the container's 127.0.0.1 for each port of the stack. Each
connection accepted there is relayed to 127.0.0.1:<same port> on the host. Nothing
listens on any interface but a loopback; a container's listeners close when it
dies. The function only starts at its first invocation, after the container: the
listeners are there first (and the SDK clients retry a refused connection).
"""

import ctypes
import os
import socket
import subprocess
import threading
import time

CLONE_NEWNET = 0x40000000


def docker(*args, timeout=120):
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True,
                          timeout=timeout).stdout.strip()


class Bridge:
    """Listeners in every Lambda container `sam local` starts; `close` ends them."""

    def __init__(self, ports):
        self.ports = ports
        self.listeners = {}
        self.lock = threading.Lock()
        self.events = subprocess.Popen(
            ["docker", "events", "--filter", "type=container", "--filter", "event=start",
             "--filter", "event=die", "--filter", "label=sam.cli.container.type=lambda",
             "--format", "{{.Action}} {{.Actor.ID}}"],
            stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._watch, daemon=True).start()
        # `docker events` reports from its subscription on: let it subscribe.
        time.sleep(1)

    def _watch(self):
        for line in self.events.stdout:
            action, _, container = line.strip().partition(" ")
            if action == "start":
                try:
                    pid = int(docker("inspect", "-f", "{{.State.Pid}}", container, timeout=30))
                    listeners = self._listen_in(pid, self.ports)
                except (subprocess.SubprocessError, OSError, ValueError, SystemExit) as err:
                    print(f"sam_local_net: no listeners in {container[:12]}: {err}", flush=True)
                    continue
                with self.lock:
                    self.listeners[container] = listeners
                for port, listener in listeners.items():
                    threading.Thread(target=self._accept, args=(listener, port), daemon=True).start()
            elif action == "die":
                with self.lock:
                    listeners = self.listeners.pop(container, {})
                for listener in listeners.values():
                    listener.close()

    @staticmethod
    def _listen_in(pid, ports):
        """Listeners opened inside the namespace of `pid`, by a thread that enters
        it and ends (the other threads stay in the host's namespace)."""
        result, errors = {}, []

        def enter_and_listen():
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(fd)
                for port in ports:
                    s = socket.socket()
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("127.0.0.1", port))
                    s.listen(64)
                    result[port] = s
            except OSError as err:
                errors.append(err)

        thread = threading.Thread(target=enter_and_listen)
        thread.start()
        thread.join(timeout=30)
        if errors or len(result) != len(ports):
            for s in result.values():
                s.close()
            raise OSError(f"cannot listen in the namespace of PID {pid}: {errors}")
        return result

    @staticmethod
    def _accept(listener, port):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=Bridge._relay, args=(conn, port), daemon=True).start()

    @staticmethod
    def _relay(conn, port):
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            conn.close()
            return
        upstream.settimeout(None)

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
        t.start()
        pump(conn, upstream)
        t.join(timeout=60)
        conn.close()
        upstream.close()

    def close(self):
        self.events.terminate()
        try:
            self.events.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.events.kill()
        with self.lock:
            for listeners in self.listeners.values():
                for listener in listeners.values():
                    listener.close()
            self.listeners.clear()
