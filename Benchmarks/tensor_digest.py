#!/usr/bin/env python3
"""sha256 of every tensor's bytes in name order, over all shards of a model folder: equal for two
outputs that hold the same tensors, however they were split into shards (the split differs
with the number of ranks). Used by the benchmark scripts' byte-identity checks.
    python3 Benchmarks/tensor_digest.py FOLDER
"""
import glob
import hashlib
import json
import struct
import sys

out = {}
for f in glob.glob(sys.argv[1] + "/*.safetensors"):
    b = open(f, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    for k, v in h.items():
        if k != "__metadata__":
            out[k] = b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]
print(hashlib.sha256(b"".join(k.encode() + out[k] for k in sorted(out))).hexdigest())
