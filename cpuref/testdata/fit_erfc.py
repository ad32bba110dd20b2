#!/usr/bin/python3
"""Print the float32 coefficients of cpuref/mathf.go's erfcf32 and erff32
(and their C twins in cpuref/testdata/actf_check.cc).

erfc(a) for a >= 0.5 is written e^(-a^2) * t * Q(t) with t = 1/(1 + a);
Q is the degree-10 polynomial fitted here by least squares on the relative
error of erfc(a) * e^(a^2) / t at 40001 evenly spaced a in [0.5, 10.5]
(float64 math.erfc; above 10.5 erfc is below float32's range), its
coefficients rounded to float32. The fit's own relative error is 6e-9;
evaluated in float32 (Horner with fma) about 2.5 ulp. erf(a) for
|a| < 0.5 is its Taylor series a * sum_n c_n a^(2n), n = 0..7, with
c_n = 2/sqrt(pi) * (-1)^n / (n! (2n+1)) (truncation below 1e-10).

Run with Debian's /usr/bin/python3 (numpy, which python3-torch brings):

    /usr/bin/python3 cpuref/testdata/fit_erfc.py
"""

import math

import numpy as np


def f32hex(v):
    return float(np.float32(v)).hex()


def main():
    a = np.linspace(0.5, 10.5, 40001)
    t = 1 / (1 + a)
    q = np.array([math.erfc(v) * math.exp(v * v) for v in a]) / t
    vander = np.vander(t, 11)
    c, *_ = np.linalg.lstsq(vander / q[:, None], np.ones_like(q), rcond=None)
    print("fit max relative error: %.3g" % np.max(np.abs(vander @ c / q - 1)))
    print("Q, highest degree first:")
    for v in c:
        print("  " + f32hex(v))
    k = 2 / math.sqrt(math.pi)
    print("erf Taylor c_n, n = 0..7:")
    for n in range(8):
        print("  " + f32hex(k * (-1) ** n / (math.factorial(n) * (2 * n + 1))))


if __name__ == "__main__":
    main()
