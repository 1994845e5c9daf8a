"""certs.py: test CAs and certificates made with the openssl CLI (EC P-256: fast to generate)."""
import os
import subprocess

EXT = ("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
       "extendedKeyUsage=serverAuth,clientAuth\n"
       "basicConstraints=CA:FALSE\n")


def _run(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d, name):
    """(crt, key) paths of a new self-signed CA."""
    _run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", name + ".key", "-out", name + ".crt", "-days", "30", "-subj", "/CN=" + name,
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    return os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")


def make_cert(d, ca, name, expired=False):
    """(crt, key) of a leaf for 127.0.0.1/localhost signed by ca=(crt, key). expired: valid
    2020-01-01..2020-01-02 (signed with `openssl ca`, which takes explicit dates)."""
    ca_crt, ca_key = ca
    _run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name], d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write(EXT)
    if not expired:
        _run(["x509", "-req", "-in", name + ".csr", "-CA", ca_crt, "-CAkey", ca_key,
              "-CAcreateserial", "-out", name + ".crt", "-days", "30", "-extfile",
              name + ".ext"], d)
    else:
        db = os.path.join(d, "cadb-" + name)
        os.makedirs(db, exist_ok=True)
        open(os.path.join(db, "index.txt"), "w").close()
        with open(os.path.join(db, "serial"), "w") as f:
            f.write("1000\n")
        conf = os.path.join(d, name + ".cnf")
        with open(conf, "w") as f:
            f.write("[ca]\ndefault_ca=c\n[c]\ndir=%s\ndatabase=$dir/index.txt\n"
                    "serial=$dir/serial\nnew_certs_dir=$dir\ndefault_md=sha256\n"
                    "policy=p\ncopy_extensions=none\n[p]\ncommonName=supplied\n"
                    "[x]\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n" % db)
        _run(["ca", "-batch", "-config", conf, "-cert", ca_crt, "-keyfile", ca_key, "-in",
              name + ".csr", "-out", name + ".crt", "-startdate", "20200101000000Z", "-enddate",
              "20200102000000Z", "-extensions", "x", "-notext"], d)
    return os.path.join(d, name + ".crt"), os.path.join(d, name + ".key")
