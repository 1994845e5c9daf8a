"""run.py: runs every test_* function in test/integration/test_*.py; prints N passed, N failed."""
import importlib.util
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main():
    only = sys.argv[1:]
    passed = failed = 0
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(fname[:-3], os.path.join(HERE, fname))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for name in sorted(dir(mod)):
            if not name.startswith("test_") or (only and name not in only):
                continue
            start = time.time()
            try:
                getattr(mod, name)()
                passed += 1
                print("PASS %s.%s (%.1fs)" % (fname[:-3], name, time.time() - start), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s.%s (%.1fs)" % (fname[:-3], name, time.time() - start), flush=True)
                traceback.print_exc()
                sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
