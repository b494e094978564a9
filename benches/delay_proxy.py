#!/usr/bin/env python3
"""TCP proxy adding a fixed one-way delay to every chunk in both directions (a network round
trip on localhost): delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_US"""
import asyncio, sys, time

LISTEN, TARGET, DELAY = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1e6

async def pipe(reader, writer):
    q = asyncio.Queue()
    async def send():
        while True:
            due, data = await q.get()
            if data is None:
                writer.close(); return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
    task = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            q.put_nowait((time.monotonic() + DELAY, data))
    finally:
        q.put_nowait((0, None))
        await task

async def handle(cr, cw):
    sr, sw = await asyncio.open_connection('127.0.0.1', TARGET)
    await asyncio.gather(pipe(cr, sw), pipe(sr, cw), return_exceptions=True)

async def main():
    server = await asyncio.start_server(handle, '127.0.0.1', LISTEN)
    async with server:
        await server.serve_forever()

asyncio.run(main())
