"""Stand-in for the get-pip script that ansible-test downloads to seed its venvs.

ansible-test fetches get-pip from Ansible's own CI file host, which sites behind a
proxy or without internet cannot reach (ansible/ansible#77304), and it runs pip
with PIP_CONFIG_FILE=/dev/null, so a site's CA bundle setting is not seen either.
This script seeds pip from the interpreter's bundled wheel (ensurepip), makes the
system CA bundle pip's default inside the venv, then installs the pip version
ansible-test asked for. scripts/sanity.sh puts it where ansible-test looks first.
"""

import ensurepip
import os
import subprocess
import sys
import sysconfig

CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def main():
    # ansible-test passes pip's own options plus the packages to install (pip==X).
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    ensurepip.bootstrap()
    ca = next((c for c in CA_BUNDLES if os.path.exists(c)), None)
    if ca:
        site_dir = sysconfig.get_paths()["purelib"]
        with open(os.path.join(site_dir, "sitecustomize.py"), "a") as handle:
            handle.write("import os\nos.environ.setdefault('PIP_CERT', %r)\n" % ca)
        os.environ.setdefault("PIP_CERT", ca)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet"] + args)


if __name__ == "__main__":
    main()
