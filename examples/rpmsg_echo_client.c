/*
 * An rpmsg echo client on the RC, written as for OpenAMP: it takes rpmsg device DEVICE of the
 * board config in place of vepf-host (or, with --attach, the device a running vepf-host lends it:
 * [device.rpmsg] host_serve = "application"), waits for the EP to announce "rpmsg-echo" (the bind
 * callback creates the endpoint for it), then sends COUNT messages of SIZE bytes one at a time
 * and checks each reply byte for byte (a message the service lost by going away is sent again
 * once it is back). Prints the round trip's median and 99th percentile in
 * microseconds. Exit code 0 when every reply came back intact, 1 otherwise.
 *
 *   cc rpmsg_echo_client.c $(pkg-config --cflags --libs vepf-rpmsg) -o rpmsg_echo_client
 *   ./rpmsg_echo_client board.toml 0 1000 64
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vepf/rpmsg.h>

static struct rpmsg_endpoint ept;
static int bound;
static unsigned char reply[512];
static size_t reply_len;
static int replied;

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int on_reply(struct rpmsg_endpoint* e, void* data, size_t len, uint32_t src, void* priv) {
  (void)e;
  (void)src;
  (void)priv;
  reply_len = len < sizeof reply ? len : sizeof reply;
  memcpy(reply, data, reply_len);
  replied = 1;
  return RPMSG_SUCCESS;
}

static void on_unbind(struct rpmsg_endpoint* e) {
  bound = 0;
  rpmsg_destroy_ept(e);
}

/* The EP announced a service: ours is "rpmsg-echo". */
static void on_bind(struct rpmsg_device* rdev, const char* name, uint32_t dest) {
  if (strcmp(name, "rpmsg-echo") != 0 || bound) return;
  if (rpmsg_create_ept(&ept, rdev, name, RPMSG_ADDR_ANY, dest, on_reply, on_unbind) ==
      RPMSG_SUCCESS)
    bound = 1;
}

static int cmp(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static int wait_for(struct rpmsg_device* rdev, const int* flag, double timeout_us) {
  const double end = now_us() + timeout_us;
  while (!*flag && now_us() < end) {
    if (vepf_rpmsg_poll(rdev, 10) != RPMSG_SUCCESS) return 0;
  }
  return *flag;
}

/* Waits for the reply, or for the service to go. */
static int wait_for_reply(struct rpmsg_device* rdev, double timeout_us) {
  const double end = now_us() + timeout_us;
  while (!replied && bound && now_us() < end) {
    if (vepf_rpmsg_poll(rdev, 10) != RPMSG_SUCCESS) return 0;
  }
  return replied;
}

int main(int argc, char** argv) {
  struct rpmsg_device* rdev;
  unsigned long count, size, i, bad = 0;
  unsigned char msg[512];
  double* rtt;
  int ret, attach = argc > 1 && strcmp(argv[1], "--attach") == 0;

  argc -= attach;
  argv += attach;
  if (argc < 3 || argc > 5) {
    fprintf(stderr, "usage: rpmsg_echo_client [--attach] BOARD.toml DEVICE [COUNT [SIZE]]\n");
    return 2;
  }
  count = argc > 3 ? strtoul(argv[3], NULL, 0) : 1000;
  size = argc > 4 ? strtoul(argv[4], NULL, 0) : 64;
  if (count == 0 || size == 0 || size > 496) {
    fprintf(stderr, "COUNT is at least 1 and SIZE 1..496 bytes\n");
    return 2;
  }
  rtt = calloc(count, sizeof *rtt);
  if (rtt == NULL) return 1;

  rdev = (attach ? vepf_rpmsg_attach : vepf_rpmsg_open)(
      argv[1], VEPF_RPMSG_DRIVER, (uint32_t)strtoul(argv[2], NULL, 0), on_bind);
  if (rdev == NULL) {
    fprintf(stderr, "rpmsg_echo_client: %s\n", vepf_rpmsg_last_error());
    free(rtt);
    return 1;
  }
  if (!wait_for(rdev, &bound, 10e6)) {
    fprintf(stderr, "rpmsg_echo_client: no \"rpmsg-echo\" announced within 10 s\n");
    vepf_rpmsg_close(rdev);
    free(rtt);
    return 1;
  }
  printf("rpmsg-echo found at address %u; %lu message(s) of %lu bytes\n", (unsigned)ept.dest_addr,
         count, size);
  for (i = 0; i < count; i++) {
    double t0;
    unsigned long j;
    for (j = 0; j < size; j++) msg[j] = (unsigned char)(i * 7 + j);
    replied = 0;
    t0 = now_us();
    ret = rpmsg_send(&ept, msg, (int)size);
    if (ret != (int)size) {
      fprintf(stderr, "rpmsg_send: %d: %s\n", ret, vepf_rpmsg_last_error());
      break;
    }
    if (!wait_for_reply(rdev, 5e6)) {
      if (!bound && wait_for(rdev, &bound, 10e6)) {
        /* The service went (DESTROY) and is back: its last message is sent again. */
        printf("rpmsg-echo came back at address %u\n", (unsigned)ept.dest_addr);
        i--;
        continue;
      }
      fprintf(stderr, "no reply to message %lu within 5 s\n", i);
      break;
    }
    rtt[i] = now_us() - t0;
    if (reply_len != size || memcmp(reply, msg, size) != 0) bad++;
  }
  if (i == count) {
    qsort(rtt, count, sizeof *rtt, cmp);
    printf("%lu echoed, %lu corrupt; round trip p50 %.1f us, p99 %.1f us\n", count, bad,
           rtt[count / 2], rtt[count * 99 / 100]);
  }
  if (bound) rpmsg_destroy_ept(&ept);
  vepf_rpmsg_close(rdev);
  free(rtt);
  return i == count && bad == 0 ? 0 : 1;
}
