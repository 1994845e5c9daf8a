"""test_check_auth.py: the automatic consistency check (--check-interval-ms) with --auth-file: the
leader asks members over the peer transport, so rounds compare hashes instead of being refused
Unauthorized on the client port (and an unanswered round never counts as OK)."""
import os

from harness import FAST_FLAGS, Cluster, cli, wait_for


def test_check_compares_hashes_with_auth_file():
    c = Cluster(3)
    try:
        r = cli(["auth", "hash-token", "--name", "ops", "--role", "admin"])
        token = r.stderr.split("token:")[1].split()[0]
        auth = os.path.join(c.tmp, "auth")
        with open(auth, "w") as f:
            f.write(r.stdout)
        os.chmod(auth, 0o600)
        c.flags = FAST_FLAGS + ["--auth-file", auth, "--check-interval-ms", "300"]
        c.start()
        os.environ["METACENTER_TOKEN"] = token  # the harness's cli() calls (cluster status)
        leader = c.leader()
        eps = c.endpoints()
        cli(["--endpoints", eps, "bucket", "create", "chk"])
        cli(["--endpoints", eps, "put", "chk", "k"])

        def ok_rounds():
            return [ln for ln in leader.log().splitlines()
                    if "consistency_check_round" in ln and "result=ok equal=2 differs=0" in ln]

        assert wait_for(lambda: len(ok_rounds()) >= 2, 15), leader.log_tail(30)
        checks = [ln for n in c.nodes for ln in n.log().splitlines() if "consistency_check" in ln]
        assert not [ln for ln in checks if "Unauthorized" in ln or "unanswered" in ln
                    or "incomplete" in ln], checks
        # Without a token the client port still refuses the admin CHECK op.
        del os.environ["METACENTER_TOKEN"]
        r = cli(["--endpoints", eps, "check"], check=False)
        assert r.returncode != 0 and "Unauthorized" in r.stderr, r.stdout + r.stderr
    finally:
        os.environ.pop("METACENTER_TOKEN", None)
        c.close()
