/* The CPU's fp32 fused-multiply-add peak: FLOP/s of independent FMA chains held in registers.

   cc -O2 -march=native -ffp-contract=fast -pthread fma_peak.c -o fma_peak
   ./fma_peak THREADS ITERATIONS   ->  prints the FLOP/s of all threads together

   No convolution or matmul can run faster than this: it is the arithmetic alone, with no loads.
   CHAINS independent accumulators hide the FMA latency (4 cycles on current x86 cores, two FMA
   units: 8 chains in flight saturate them); each is a vector of the widest width the compiler
   targets. Each accumulator starts from a different runtime value, so the compiler can neither
   merge the chains nor fold the loop (it would if they started equal). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
#define VECTOR_BYTES 64
#elif defined(__AVX__)
#define VECTOR_BYTES 32
#else
#define VECTOR_BYTES 16
#endif
#define LANES (VECTOR_BYTES / 4)
#define CHAINS 10
typedef float vec __attribute__((vector_size(VECTOR_BYTES)));

static long iterations;
static volatile float start_value = 1.0f;  /* Read at run time: nothing is constant-folded. */

static double seconds_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static vec splat(float value) {
  vec v;
  for (int l = 0; l < LANES; ++l) v[l] = value;
  return v;
}

static void *run(void *result) {
  /* Ten named accumulators rather than an array, so that they live in registers. */
  const vec scale = splat(0.999999f), offset = splat(1e-7f);
  vec a0 = splat(start_value), a1 = splat(start_value + 1), a2 = splat(start_value + 2),
      a3 = splat(start_value + 3), a4 = splat(start_value + 4), a5 = splat(start_value + 5),
      a6 = splat(start_value + 6), a7 = splat(start_value + 7), a8 = splat(start_value + 8),
      a9 = splat(start_value + 9);
  double begin = seconds_now();
  for (long i = 0; i < iterations; ++i) {  /* One FMA each. */
    a0 = a0 * scale + offset; a1 = a1 * scale + offset; a2 = a2 * scale + offset;
    a3 = a3 * scale + offset; a4 = a4 * scale + offset; a5 = a5 * scale + offset;
    a6 = a6 * scale + offset; a7 = a7 * scale + offset; a8 = a8 * scale + offset;
    a9 = a9 * scale + offset;
  }
  double elapsed = seconds_now() - begin;
  vec all = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9;  /* No chain is dead code. */
  float sink = 0.0f;
  for (int l = 0; l < LANES; ++l) sink += all[l];
  ((double *)result)[0] = 2.0 * LANES * CHAINS * (double)iterations / elapsed;
  ((double *)result)[1] = sink;
  return NULL;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  iterations = argc > 2 ? atol(argv[2]) : 100000000L;
  if (threads < 1 || threads > 1024 || iterations < 1) {
    fprintf(stderr, "usage: %s THREADS ITERATIONS\n", argv[0]);
    return 2;
  }
  pthread_t *ids = malloc(sizeof(pthread_t) * threads);
  double(*results)[2] = malloc(sizeof(double[2]) * threads);
  for (int t = 0; t < threads; ++t) pthread_create(&ids[t], NULL, run, results[t]);
  double total = 0.0, sink = 0.0;
  for (int t = 0; t < threads; ++t) {
    pthread_join(ids[t], NULL);
    total += results[t][0];
    sink += results[t][1];
  }
  printf("%.6e\n", total);
  fprintf(stderr, "lanes %d, chains %d, checksum %g\n", LANES, CHAINS, sink);
  return 0;
}
