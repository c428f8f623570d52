#!/usr/bin/env python3
# minmove_sat.py NxM... - is there a pool assignment that depends only on the
# set of live nodes, is exactly balanced (floor or ceil of M/n each) for every
# set, and moves only the leaving (joining) node's VIPs when one node leaves
# (joins)? N possible nodes, M VIPs; answers SAT (one exists) or UNSAT.
# Needs minisat (apt-get install minisat). Example (seconds):
#   python3 lab/minmove_sat.py 5x16 6x16
# poolproof_test.go proves the small cases by exhaustive search in Go.
import itertools, subprocess, sys, tempfile, os
def check(N, M):
    U = range(N)
    subsets = [s for k in range(2, N+1) for s in itertools.combinations(U, k)]
    nv = 0; clauses = []
    def new():
        nonlocal nv; nv += 1; return nv
    X = {}
    for S in subsets:
        for v in range(M):
            for h in S: X[S, v, h] = new()
            clauses.append([X[S, v, h] for h in S])
            for a, b in itertools.combinations(S, 2): clauses.append([-X[S, v, a], -X[S, v, b]])
    def atmost(lits, k):  # Sinz sequential counter
        n = len(lits)
        if k >= n: return
        if k == 0:
            for l in lits: clauses.append([-l]); 
            return
        s = [[new() for j in range(k)] for i in range(n)]
        clauses.append([-lits[0], s[0][0]])
        for j in range(1, k): clauses.append([-s[0][j]])
        for i in range(1, n):
            clauses.append([-lits[i], s[i][0]]); clauses.append([-s[i-1][0], s[i][0]])
            for j in range(1, k):
                clauses.append([-lits[i], -s[i-1][j-1], s[i][j]]); clauses.append([-s[i-1][j], s[i][j]])
            clauses.append([-lits[i], -s[i-1][k-1]])
    for S in subsets:
        lo, hi = M // len(S), -(-M // len(S))
        for h in S:
            lits = [X[S, v, h] for v in range(M)]
            atmost(lits, hi)
            atmost([-l for l in lits], M - lo)
    for S in subsets:
        for y in U:
            if y in S: continue
            T = tuple(sorted(S + (y,)))
            for v in range(M):
                for h in S: clauses.append([-X[T, v, h], X[S, v, h]])
    # symmetry: fix the full set's assignment to round-robin
    full = tuple(U)
    for v in range(M): clauses.append([X[full, v, v % N]])
    with tempfile.NamedTemporaryFile('w', suffix='.cnf', delete=False) as f:
        f.write(f"p cnf {nv} {len(clauses)}\n")
        for c in clauses: f.write(" ".join(map(str, c)) + " 0\n")
    r = subprocess.run(["minisat", f.name, f.name + ".out"], capture_output=True, text=True)
    res = open(f.name + ".out").read().split()[0]
    os.unlink(f.name); os.unlink(f.name + ".out")
    return res
for a in sys.argv[1:]:
    N, M = map(int, a.split("x"))
    print(f"{N} nodes x {M} VIPs: {check(N, M)}", flush=True)
