#pragma once
// Status reports of both programs (`vepf-ep status`, `vepf-host status`): one JSON document that
// each program builds from its own state and serves on its control socket ({"op": "status"}),
// and its readable form, in the manner of `lspci -vv` and `ethtool -S`.
//
// The document (every count an unsigned integer; hex strings for epoch and features):
//   {"program": "vepf-ep" | "vepf-host", "board": NAME, "platform": "loopback" | "vfio" | ...,
//    "link": {"state": "attached" | "waiting", "epoch": "0x...", "where": TEXT, ...},
//    "link_model": {"nonposted_reads", "nonposted_read_bytes", "posted_writes",
//                   "posted_write_bytes", "signals_sent", "signals_received"},
//    "devices": [{"slot", "type": "net" | "block" | "console" | "rpmsg", "status" (vepf-ep: the
//                 device status byte, VIRTIO 1.2 §2.1), "driver_ok", "needs_reset",
//                 "features": "0x...", "feature_names": [...],
//                 "queues": [{"index", "size" (entries), "broken", "why"?, and per side:
//                             vepf-ep "last_avail", "used", "pending"; vepf-host "in_flight"}],
//                 "counters": {NAME: COUNT, ...}, and the device's own keys}]}

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "vepf/ring/access.hpp"

namespace vepf::app {

/// The link-model counters (ring::LinkCounters) as the document's "link_model".
nlohmann::json link_model_json(const ring::LinkCounters& c);

/// The names of the feature bits set in `features` for a device of `device_id`
/// (<linux/virtio_ids.h>): the transport's (VIRTIO 1.2 §6) and the device type's, as the spec
/// writes them without the VIRTIO_*_F_ prefix ("VERSION_1", "EVENT_IDX", "CSUM", "MULTIPORT");
/// a bit without a name as "bit N".
nlohmann::json feature_names(std::uint32_t device_id, std::uint64_t features);

/// The type names both sides use: "net", "block", "console", "rpmsg", else "id N".
std::string device_type_name(std::uint32_t device_id);

/// The readable form of a status document (several lines, each ending in '\n').
std::string format_status(const nlohmann::json& status);

/// `<prog> status [--json]`: asks the program listening on `path` for its status and prints it
/// (the document with `json`, else its readable form). Returns the exit code: 0 printed, 1 the
/// program could not be reached or answered an error (the message says which).
int print_status(const std::string& prog, const std::string& path, bool json);

}  // namespace vepf::app
