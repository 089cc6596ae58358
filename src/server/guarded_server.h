// An httplib::Server whose requests have a deadline (slowloris): see guarded_server.cpp.
#pragma once

#include <httplib.h>

#include <memory>

namespace fv::server {

// Plain-HTTP server: each request must be read in full within request_timeout_s of its first
// byte, or it is refused and the connection closed (cpp-httplib 0.11 only bounds each read).
std::unique_ptr<httplib::Server> make_guarded_server(int request_timeout_s);

}  // namespace fv::server
