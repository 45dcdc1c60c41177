#!/usr/bin/python3
"""mod_wps example of a command-line process script (declared as [process:echo_text] in
conf/wps.cfg, installed as /etc/wps/scripts/echo_text.py).

Writes TEXT to the file OUT exactly as received, prints its length in characters on stdout
(mod_wps returns it as the literal output `length`), and reports progress with
"PROGRESS <percent> <message>" lines, waiting DELAY seconds at each step.
"""
import argparse
import time

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--text", required=True)
parser.add_argument("--delay", type=float, default=0.0)
parser.add_argument("--out", required=True)
args = parser.parse_args()

for step in (1, 2, 3):
    print(f"PROGRESS {step * 25} step {step} of 3", flush=True)
    time.sleep(args.delay)
with open(args.out, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
    f.write(args.text)
print(len(args.text))
