"""idle.py HOST PORT N PROCS: open N TLS connections, send one keep-alive
GET /1k.bin on each, read the whole response, then hold them all idle.
Prints "ready OK ERR" once every connection is done, then waits for stdin
to close and exits. PROCS processes share the work (the client, not the
server, is the slow side of 10,000 handshakes)."""

import asyncio
import multiprocessing
import resource
import ssl
import sys

REQ = b"GET /1k.bin HTTP/1.1\r\nHost: localhost\r\n\r\n"


async def one(host, port, ctx, sem, held):
    async with sem:
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ctx,
                                        server_hostname="localhost"), 30)
            w.write(REQ)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
            if not head.startswith(b"HTTP/1.1 200"):
                return False
            n = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
            await asyncio.wait_for(r.readexactly(n), 30)
            held.append(w)
            return True
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                ssl.SSLError, ValueError):
            return False


async def hold(host, port, n, conn, stop):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sem = asyncio.Semaphore(64)
    held = []
    res = await asyncio.gather(*(one(host, port, ctx, sem, held)
                                 for _ in range(n)))
    ok = sum(res)
    conn.send((ok, n - ok))
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    for w in held:
        w.transport.abort()


def child(host, port, n, conn, stop):
    asyncio.run(hold(host, port, n, conn, stop))


def main():
    host, port, n, procs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        int(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stop = multiprocessing.Event()
    kids, pipes = [], []
    for i in range(procs):
        a, b = multiprocessing.Pipe()
        share = n // procs + (1 if i < n % procs else 0)
        p = multiprocessing.Process(target=child,
                                    args=(host, port, share, b, stop))
        p.start()
        kids.append(p)
        pipes.append(a)
    ok = err = 0
    for a in pipes:
        o, e = a.recv()
        ok += o
        err += e
    print(f"ready {ok} {err}", flush=True)
    sys.stdin.read()
    stop.set()
    for p in kids:
        p.join(5)
        if p.is_alive():
            p.kill()


if __name__ == "__main__":
    main()
