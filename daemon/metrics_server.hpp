#pragma once

#include <expected>
#include <functional>
#include <memory>
#include <string>

namespace retentiond {

// A small HTTP/1.1 server for Prometheus: GET /metrics answers with `render()`, in the text
// exposition format; other paths get 404 and other methods 405. It runs on its own thread.
// Each request must arrive and be answered within 10 s, and at most 16 connections are served
// at once: slow or many clients cannot hold it or use up the process's descriptors.
class MetricsServer {
public:
  // Listens on `listen` ("127.0.0.1:9465", "[::1]:9465", "0.0.0.0:9465"). Throws
  // std::runtime_error naming the address when it cannot listen there.
  MetricsServer(const std::string& listen, std::function<std::string()> render);
  ~MetricsServer();  // stops listening, closes connections, joins the thread
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// Where the metrics endpoint listens: an IP address (no host names) and a port.
struct ListenAddress {
  std::string host;
  unsigned short port = 0;
};

// Splits "host:port" (IPv6 hosts in brackets). Returns the reason when it is not one.
std::expected<ListenAddress, std::string> parse_listen_address(const std::string& text);

}  // namespace retentiond
