/*
 * An rpmsg echo service on the EP, written as for OpenAMP: it takes rpmsg device DEVICE of the
 * board config in place of vepf-ep (or, with --attach, the device a running vepf-ep lends it:
 * [device.rpmsg] ep_serve = "application"), creates endpoint "rpmsg-echo" (announced to the host
 * by the name service) and sends every message back to its sender. Runs until SIGINT or SIGTERM,
 * then prints how many messages it echoed.
 *
 *   cc rpmsg_echo_service.c $(pkg-config --cflags --libs vepf-rpmsg) -o rpmsg_echo_service
 *   ./rpmsg_echo_service board.toml 0
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vepf/rpmsg.h>

static volatile sig_atomic_t quit;
static unsigned long echoed, failed;

static void on_signal(int sig) {
  (void)sig;
  quit = 1;
}

static int on_message(struct rpmsg_endpoint* ept, void* data, size_t len, uint32_t src,
                      void* priv) {
  (void)priv;
  /* In a callback rpmsg_sendto() does not wait: a full link is a lost echo, counted. */
  if (rpmsg_sendto(ept, data, (int)len, src) < 0)
    failed++;
  else
    echoed++;
  return RPMSG_SUCCESS;
}

int main(int argc, char** argv) {
  struct rpmsg_endpoint ept;
  struct rpmsg_device* rdev;
  struct sigaction sa = {0};
  int ret, attach = argc > 1 && strcmp(argv[1], "--attach") == 0;

  argc -= attach;
  argv += attach;
  if (argc != 3) {
    fprintf(stderr, "usage: rpmsg_echo_service [--attach] BOARD.toml DEVICE\n");
    return 2;
  }
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  rdev = (attach ? vepf_rpmsg_attach : vepf_rpmsg_open)(argv[1], VEPF_RPMSG_DEVICE,
                                                        (uint32_t)strtoul(argv[2], NULL, 0), NULL);
  if (rdev == NULL) {
    fprintf(stderr, "rpmsg_echo_service: %s\n", vepf_rpmsg_last_error());
    return 1;
  }
  ret =
      rpmsg_create_ept(&ept, rdev, "rpmsg-echo", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, on_message, NULL);
  if (ret != RPMSG_SUCCESS) {
    fprintf(stderr, "rpmsg_create_ept: %d: %s\n", ret, vepf_rpmsg_last_error());
    vepf_rpmsg_close(rdev);
    return 1;
  }
  printf("rpmsg-echo at address %u\n", (unsigned)ept.addr);
  fflush(stdout);
  while (!quit) {
    if (vepf_rpmsg_poll(rdev, 100) != RPMSG_SUCCESS) break;
  }
  rpmsg_destroy_ept(&ept);
  vepf_rpmsg_close(rdev);
  printf("echoed %lu message(s), %lu lost for want of room\n", echoed, failed);
  return 0;
}
