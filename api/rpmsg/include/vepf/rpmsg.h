/*
 * virtio-epf rpmsg endpoints for C (and C++) applications, in the names of OpenAMP's
 * lib/include/openamp/rpmsg.h: code written against OpenAMP's rpmsg_create_ept(), rpmsg_send()
 * and the name-service callbacks builds against this header with the #include and the set-up
 * (vepf_rpmsg_open() in place of rpmsg_init_vdev()) changed. The wire format is Linux's
 * virtio_rpmsg_bus (struct rpmsg_hdr, 16 bytes, then at most 496 payload bytes in a 512-byte
 * buffer; name service at address 53, struct rpmsg_ns_msg, 40 bytes), so either side can talk to
 * vepf-ep's or vepf-host's socket channels, to Linux, or to OpenAMP.
 *
 * One process takes one rpmsg device of a board config: on the EP it runs the EP server with
 * that device (VEPF_RPMSG_DEVICE side: in place of vepf-ep), on the RC the host bus (driver
 * side: in place of vepf-host), and the endpoints live in the process. The other devices of the
 * board config are served as vepf-ep / vepf-host would serve them. Or, where vepf-ep /
 * vepf-host keep running, the process takes the one rpmsg device they lend it
 * (vepf_rpmsg_attach()); everything below works the same either way.
 *
 * Threading: every function is called on one thread, the one that calls vepf_rpmsg_poll();
 * callbacks run on it, from vepf_rpmsg_poll(). A callback may call every function here except
 * vepf_rpmsg_poll() and vepf_rpmsg_close().
 *
 * Errors: functions that return int give RPMSG_SUCCESS (0) or a byte count, else one of the
 * RPMSG_ERR_* codes below (OpenAMP's values). vepf_rpmsg_last_error() says why in words.
 *
 * Build: cc app.c $(pkg-config --cflags --libs vepf-rpmsg)
 */
#ifndef VEPF_RPMSG_H
#define VEPF_RPMSG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sizes and addresses (Linux include/linux/rpmsg.h, drivers/rpmsg/virtio_rpmsg_bus.c). */
#define RPMSG_NAME_SIZE 32             /* bytes of an endpoint name, NUL included */
#define RPMSG_ADDR_ANY 0xFFFFFFFFu     /* "any address": let the library choose or learn it */
#define RPMSG_NS_EPT_ADDR 0x35u        /* the name service's address (53) */
#define RPMSG_RESERVED_ADDRESSES 1024u /* addresses chosen by the library are >= this */

/* Error codes: OpenAMP's values. */
#define RPMSG_SUCCESS 0
#define RPMSG_ERROR_BASE (-2000)
#define RPMSG_ERR_NO_MEM (RPMSG_ERROR_BASE - 1)    /* too many endpoints */
#define RPMSG_ERR_NO_BUFF (RPMSG_ERROR_BASE - 2)   /* no room on the link (trysend, timeouts) */
#define RPMSG_ERR_PARAM (RPMSG_ERROR_BASE - 3)     /* a NULL, a bad name or address, no callback */
#define RPMSG_ERR_DEV_STATE (RPMSG_ERROR_BASE - 4) /* the link is down, or the device is gone */
#define RPMSG_ERR_BUFF_SIZE (RPMSG_ERROR_BASE - 5) /* payload above rpmsg_get_tx_buffer_size() */
#define RPMSG_ERR_INIT (RPMSG_ERROR_BASE - 6)      /* vepf_rpmsg_open() failed */
#define RPMSG_ERR_ADDR (RPMSG_ERROR_BASE - 7)      /* address or name taken; no destination */

struct rpmsg_device; /* opaque: from vepf_rpmsg_open() */
struct rpmsg_endpoint;

/*
 * A message for `ept`: `len` payload bytes from address `src`. `data` is valid until the
 * callback returns; treat it as read-only (it may be a view of the link window). Return
 * RPMSG_SUCCESS (the value is not used otherwise).
 */
typedef int (*rpmsg_ept_cb)(struct rpmsg_endpoint* ept, void* data, size_t len, uint32_t src,
                            void* priv);
/* The peer destroyed the service `ept` is bound to (name-service DESTROY), or the link went. */
typedef void (*rpmsg_ns_unbind_cb)(struct rpmsg_endpoint* ept);
/* The peer announced service `name` at address `dest` and no endpoint here has that name. */
typedef void (*rpmsg_ns_bind_cb)(struct rpmsg_device* rdev, const char* name, uint32_t dest);

/*
 * An endpoint: the application owns the memory (as in OpenAMP), the library fills it in at
 * rpmsg_create_ept() and keeps dest_addr current until rpmsg_destroy_ept(). `priv` is the
 * application's, passed to the receive callback.
 */
struct rpmsg_endpoint {
  char name[RPMSG_NAME_SIZE];
  struct rpmsg_device* rdev;
  uint32_t addr;      /* local address */
  uint32_t dest_addr; /* where rpmsg_send() goes; RPMSG_ADDR_ANY while unknown */
  rpmsg_ept_cb cb;
  rpmsg_ns_unbind_cb ns_unbind_cb;
  void* priv;
};

/*
 * Creates endpoint `ept` on `rdev` at address `src` (RPMSG_ADDR_ANY: one >= 1024) sending to
 * `dest`. `name` (NULL or "": none) is 1..31 of [A-Za-z0-9._-]. With dest RPMSG_ADDR_ANY the
 * endpoint learns its destination (the peer's announcement of the same name, else the sender of
 * the first message) and a named one is announced to the peer (now, or when the link comes up).
 * With a fixed dest (the usual thing in a bind callback) it is not announced back.
 * Endpoints outlive link resets and re-probes: they are announced again each time.
 * Errors: RPMSG_ERR_PARAM, RPMSG_ERR_ADDR (address or name taken), RPMSG_ERR_NO_MEM (1024
 * endpoints).
 */
int rpmsg_create_ept(struct rpmsg_endpoint* ept, struct rpmsg_device* rdev, const char* name,
                     uint32_t src, uint32_t dest, rpmsg_ept_cb cb, rpmsg_ns_unbind_cb ns_unbind_cb);
/* Destroys `ept` (a named, announced one is announced gone). Its memory is the caller's again. */
void rpmsg_destroy_ept(struct rpmsg_endpoint* ept);

/*
 * Sends `len` bytes (0..rpmsg_get_tx_buffer_size()) from `ept` to its dest_addr (rpmsg_send) or
 * to `dst` (rpmsg_sendto). Waits for room up to 15 s, running the device meanwhile; inside a
 * callback it cannot run the device and does not wait (as rpmsg_trysend). Returns `len`.
 * Errors: RPMSG_ERR_PARAM, RPMSG_ERR_BUFF_SIZE, RPMSG_ERR_ADDR (no destination known yet),
 * RPMSG_ERR_DEV_STATE (link down), RPMSG_ERR_NO_BUFF (no room within the wait).
 */
int rpmsg_send(struct rpmsg_endpoint* ept, const void* data, int len);
int rpmsg_sendto(struct rpmsg_endpoint* ept, const void* data, int len, uint32_t dst);
/* As rpmsg_send()/rpmsg_sendto() without waiting: RPMSG_ERR_NO_BUFF when the link is full. */
int rpmsg_trysend(struct rpmsg_endpoint* ept, const void* data, int len);
int rpmsg_trysendto(struct rpmsg_endpoint* ept, const void* data, int len, uint32_t dst);
/* Most payload bytes of one message: 496 (a 512-byte buffer less struct rpmsg_hdr). */
int rpmsg_get_tx_buffer_size(struct rpmsg_endpoint* ept);

/* Nonzero when `ept` is created and knows where to send. */
static inline unsigned int is_rpmsg_ept_ready(struct rpmsg_endpoint* ept) {
  return ept != NULL && ept->rdev != NULL && ept->dest_addr != RPMSG_ADDR_ANY;
}

/* virtio-epf's set-up, in place of OpenAMP's remoteproc / rpmsg_init_vdev(). */
enum vepf_rpmsg_side {
  VEPF_RPMSG_DEVICE = 0, /* the EP: the virtio-rpmsg device (vepf-ep's part) */
  VEPF_RPMSG_DRIVER = 1, /* the RC: the virtio-rpmsg driver (vepf-host's part) */
};

/*
 * Takes rpmsg device `device` (its index among the board config's [[device]] tables, which must
 * be an rpmsg one) of the board config at path `board_config`, on `side`. `ns_bind_cb` (may be
 * NULL) is called for peer announcements no endpoint has the name of. The device side returns
 * once the EP server runs; the driver side once the EP is reached (waiting up to 30 s for it).
 * Logs go to stderr at level warn (VEPF_LOG_LEVEL=debug|info|warn|error changes that).
 * Returns NULL on failure: vepf_rpmsg_last_error() says why.
 */
struct rpmsg_device* vepf_rpmsg_open(const char* board_config, enum vepf_rpmsg_side side,
                                     uint32_t device, rpmsg_ns_bind_cb ns_bind_cb);
/*
 * As vepf_rpmsg_open(), where vepf-ep (VEPF_RPMSG_DEVICE) or vepf-host (VEPF_RPMSG_DRIVER) runs
 * with that board config and keeps the link: the program lends this process rpmsg device
 * `device`, which must have ep_serve (or host_serve) = "application" in its [device.rpmsg], through
 * <runtime_dir>/ep/device.sock or <runtime_dir>/host/device.sock. Everything else works as with
 * vepf_rpmsg_open(): addresses, the name service both ways (announcements the peer made before
 * the attach reach ns_bind_cb too), rpmsg_sendto() to any address. One application at a time
 * takes the device. Waits up to 30 s for the program's socket. When the program stops, the
 * endpoints see the link go (unbind callbacks) and vepf_rpmsg_poll() attaches again when it is
 * back, for up to 30 s; when this process ends, the program tells the peer that the names it
 * announced are gone, even after a crash. Returns NULL on failure (no such socket, another
 * application has the device, the side's serve key is not "application"): vepf_rpmsg_last_error()
 * says why.
 */
struct rpmsg_device* vepf_rpmsg_attach(const char* board_config, enum vepf_rpmsg_side side,
                                       uint32_t device, rpmsg_ns_bind_cb ns_bind_cb);
/*
 * Runs the device: waits up to `timeout_ms` (-1: forever) for the link, the peer or a timer and
 * handles what came (callbacks run here). On the driver side, after the EP went away, this call
 * waits for it to come back (up to 30 s). Returns RPMSG_SUCCESS, or RPMSG_ERR_DEV_STATE once the
 * device is gone for good (the EP did not come back), RPMSG_ERR_PARAM.
 */
int vepf_rpmsg_poll(struct rpmsg_device* rdev, int timeout_ms);
/* A descriptor that is readable when vepf_rpmsg_poll(rdev, 0) has work: for the caller's loop. */
int vepf_rpmsg_fd(struct rpmsg_device* rdev);
/* Nonzero while the link is up (the driver set DRIVER_OK, and the device is not reset). */
int vepf_rpmsg_link_up(struct rpmsg_device* rdev);
/* Destroys the endpoints still there (their memory is the caller's again) and stops the
 * device: the peer sees the link go down. */
void vepf_rpmsg_close(struct rpmsg_device* rdev);
/* Why the last call on this thread failed: a line of text, "" when nothing failed. */
const char* vepf_rpmsg_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* VEPF_RPMSG_H */
