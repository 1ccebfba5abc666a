"""Slow readers for benches/flood/run.sh: N clients that each ask for a large answer that is
not stored and then read nothing (or READ bytes every PERIOD seconds), for HOLD seconds.

usage: slow_readers.py HOST PORT PATH N HOLD [READ PERIOD]
Prints how many connections were answered (a status line came) and how many the server closed.
"""
import asyncio
import sys


async def one(host, port, path, i, hold, read, period, stats):
    try:
        r, w = await asyncio.open_connection(host, port, limit=1 << 16)
    except OSError:
        stats["refused"] += 1
        return
    w.write(f"GET {path}?slow={i} HTTP/1.1\r\nHost: flood\r\n\r\n".encode())
    await w.drain()
    loop = asyncio.get_running_loop()
    end = loop.time() + hold
    try:
        line = await asyncio.wait_for(r.readline(), timeout=hold)
        if line.startswith(b"HTTP/1.1 200"):
            stats["answered"] += 1
        while loop.time() < end:
            await asyncio.sleep(min(period, max(0.0, end - loop.time())))
            if read:
                got = await asyncio.wait_for(r.read(read), timeout=period)
                if not got:
                    stats["closed"] += 1
                    break
    except (asyncio.TimeoutError, OSError):
        pass
    w.transport.abort()


async def main():
    host, port, path, n, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    read = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    period = float(sys.argv[7]) if len(sys.argv) > 7 else 1.0
    stats = {"answered": 0, "closed": 0, "refused": 0}
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(host, port, path, i, hold, read, period, stats)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # no SYN flood: the accept queue is not what is measured
    await asyncio.gather(*tasks)
    print(f"slow readers: {n} asked, {stats['answered']} answered, {stats['closed']} closed by the server, {stats['refused']} refused")


asyncio.run(main())
