// What `facevault cluster status` shows, from NATS alone (no node needed): the configuration,
// the members, and per stream its last sequence and what each replica announced it applied
// (listened to for `listen_ms`; replicas announce every second), hence the lag per replica.
#pragma once

#include <nlohmann/json.hpp>

#include "cluster/nats_connection.h"
#include "common/status.h"

namespace fv::cluster {

Result<nlohmann::json> cluster_status(NatsConnection& conn, int listen_ms);

}  // namespace fv::cluster
