"""End-to-end checks of lsm-server with redis-py (RESP3, its default since 8.0).

Usage: redis_py_check.py PORT. Prints one line per check and a closing
"N passed, M failed" line; exits non-zero on any failure.
"""
import sys
import threading

import redis

port = int(sys.argv[1])
passed, failed = 0, 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {name}")
    except Exception as e:  # report every failure, keep going
        failed += 1
        print(f"FAIL {name}: {e!r}")


r = redis.Redis(host="127.0.0.1", port=port, protocol=3)


def resp3_handshake():
    assert r.connection_pool.connection_kwargs.get("protocol") in (3, "3")
    hello = r.execute_command("HELLO", 3)
    assert hello[b"proto"] == 3, hello


def strings():
    assert r.set("py:k", "v") is True
    assert r.get("py:k") == b"v"
    assert r.set("py:k", "x", nx=True) is None
    assert r.set("py:k", "w", xx=True, get=True) == b"v"
    assert r.get("missing") is None
    assert r.mset({"py:a": "1", "py:b": "2"}) is True
    assert r.mget("py:a", "nope", "py:b") == [b"1", None, b"2"]
    assert r.exists("py:a", "py:b", "nope") == 2
    assert r.delete("py:a", "py:b") == 2


def binary_and_large():
    key = b"\x00\xff\r\n"
    value = bytes(range(256)) * 4096  # 1 MiB
    r.set(key, value)
    assert r.get(key) == value


def pipeline_and_transaction():
    p = r.pipeline(transaction=False)
    for i in range(1000):
        p.set(f"py:p{i}", i)
    p.execute()
    p = r.pipeline(transaction=True)
    p.set("py:t", "1").get("py:t").delete("py:t")
    assert p.execute() == [True, b"1", 1]


def info_and_config():
    info = r.info()
    assert info["role"] == "master" and "redis_version" in info
    assert r.config_get("maxclients") == {"maxclients": "10000"}
    assert r.client_setname("py") is True and r.client_getname() == b"py"
    assert r.ping() is True
    assert r.echo("hi") == b"hi"
    assert r.dbsize() >= 1000


def range_scan():
    r.mset({"rng:1": "a", "rng:2": "b", "rng:3": "c"})
    out = r.execute_command("LSM.RANGE", "rng:", "rng;", "LIMIT", "2")
    assert out == [b"rng:1", b"a", b"rng:2", b"b"], out


def concurrent_clients():
    errors = []

    def work(t):
        c = redis.Redis(host="127.0.0.1", port=port, protocol=3)
        try:
            for i in range(200):
                c.set(f"py:c{t}:{i}", i)
                assert c.get(f"py:c{t}:{i}") == str(i).encode()
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def errors_in_redis_words():
    try:
        r.execute_command("NOSUCH", "a")
        raise AssertionError("no error")
    except redis.ResponseError as e:
        assert str(e).startswith("unknown command 'NOSUCH'"), e
    try:
        r.execute_command("GET")
        raise AssertionError("no error")
    except redis.ResponseError as e:
        assert "wrong number of arguments for 'get' command" in str(e), e


for name, fn in [
    ("resp3 handshake", resp3_handshake),
    ("strings", strings),
    ("binary and large values", binary_and_large),
    ("pipeline and transaction", pipeline_and_transaction),
    ("info, config, client", info_and_config),
    ("LSM.RANGE", range_scan),
    ("concurrent clients", concurrent_clients),
    ("errors", errors_in_redis_words),
]:
    check(name, fn)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
