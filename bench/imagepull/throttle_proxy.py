#!/usr/bin/env python3
"""A TCP proxy that makes 127.0.0.1 behave like a slow link: each connection's downstream
bandwidth is limited to --rate bytes/s and every client request waits --delay-ms first.

Usage: throttle_proxy.py --listen 127.0.0.1:PORT --target 127.0.0.1:PORT --rate BYTES --delay-ms MS
Prints "listening HOST:PORT" once it accepts connections.
"""
import argparse
import asyncio
import time


async def pump(reader, writer, rate, delay):
    try:
        budget_start = time.monotonic()
        sent = 0
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if delay:
                await asyncio.sleep(delay)
            if rate:
                sent += len(data)
                ahead = sent / rate - (time.monotonic() - budget_start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--rate", type=float, default=0)
    ap.add_argument("--delay-ms", type=float, default=0)
    a = ap.parse_args()
    lhost, lport = a.listen.rsplit(":", 1)
    thost, tport = a.target.rsplit(":", 1)

    async def handle(cr, cw):
        try:
            sr, sw = await asyncio.open_connection(thost, int(tport))
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump(cr, sw, 0, a.delay_ms / 1000.0), pump(sr, cw, a.rate, 0))

    server = await asyncio.start_server(handle, lhost, int(lport))
    print("listening", a.listen, flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
