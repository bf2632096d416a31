#include "daemon/metrics_server.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <stdexcept>
#include <thread>

namespace retentiond {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto k_connection_deadline = std::chrono::seconds{10};
// Scrapers need one or two connections; more are closed at once, so that clients cannot use up
// the descriptors the engine needs for datastores and linked files.
constexpr int k_max_connections = 16;
// After a failed accept (out of descriptors, typically), before the next one.
constexpr auto k_accept_retry = std::chrono::milliseconds{100};

// One client connection: read a request, answer it, repeat while the client keeps it alive.
class Session : public std::enable_shared_from_this<Session> {
public:
  // `open_sessions` counts the live sessions; the server outlives every session.
  Session(tcp::socket socket, const std::function<std::string()>& render, int& open_sessions)
      : m_stream(std::move(socket)), m_render(render), m_open_sessions(open_sessions) {
    ++m_open_sessions;
  }
  ~Session() { --m_open_sessions; }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() { read_request(); }

private:
  void read_request() {
    m_request = {};
    m_stream.expires_after(k_connection_deadline);
    http::async_read(m_stream, m_buffer, m_request,
                     [self = shared_from_this()](beast::error_code error, std::size_t) {
                       if (!error)
                         self->answer();
                     });
  }

  void answer() {
    m_response = {};
    m_response.version(m_request.version());
    m_response.keep_alive(m_request.keep_alive());
    m_response.set(http::field::server, "retentiond");
    const std::string_view target{m_request.target().data(), m_request.target().size()};
    const std::string_view path = target.substr(0, target.find('?'));
    if (m_request.method() != http::verb::get && m_request.method() != http::verb::head) {
      m_response.result(http::status::method_not_allowed);
      m_response.set(http::field::allow, "GET, HEAD");
      m_response.set(http::field::content_type, "text/plain; charset=utf-8");
      m_response.body() = "only GET and HEAD\n";
    } else if (path != "/metrics") {
      m_response.result(http::status::not_found);
      m_response.set(http::field::content_type, "text/plain; charset=utf-8");
      m_response.body() = "retentiond serves its metrics at /metrics\n";
    } else {
      m_response.result(http::status::ok);
      m_response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      m_response.body() = m_render();
    }
    m_response.prepare_payload();
    if (m_request.method() == http::verb::head)
      m_response.body().clear();  // Content-Length stays that of the GET
    http::async_write(m_stream, m_response,
                      [self = shared_from_this()](beast::error_code error, std::size_t) {
                        if (error)
                          return;
                        if (self->m_response.keep_alive())
                          self->read_request();
                        else
                          self->m_stream.socket().shutdown(tcp::socket::shutdown_send, error);
                      });
  }

  beast::tcp_stream m_stream;
  beast::flat_buffer m_buffer;
  http::request<http::string_body> m_request;
  http::response<http::string_body> m_response;
  const std::function<std::string()>& m_render;
  int& m_open_sessions;
};

}  // namespace

std::expected<ListenAddress, std::string> parse_listen_address(const std::string& text) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return std::unexpected("expected HOST:PORT, e.g. \"127.0.0.1:9465\"");
  std::string host = text.substr(0, colon);
  const bool bracketed = host.front() == '[' && host.back() == ']';
  if (!bracketed && host.find_first_of("[]:") != std::string::npos)
    return std::unexpected("an IPv6 host is written in brackets, e.g. \"[::1]:9465\"");
  if (bracketed)
    host = host.substr(1, host.size() - 2);
  boost::system::error_code error;
  asio::ip::make_address(host, error);
  if (error)
    return std::unexpected(fmt::format("'{}' is not an IP address (names are not resolved)", host));
  unsigned port = 0;
  const char* begin = text.data() + colon + 1;
  const char* end = text.data() + text.size();
  const auto [stop, failed] = std::from_chars(begin, end, port);
  if (failed != std::errc{} || stop != end || port == 0 || port > 65535)
    return std::unexpected("the port must be a number from 1 to 65535");
  return ListenAddress{host, static_cast<unsigned short>(port)};
}

struct MetricsServer::Impl {
  Impl(const tcp::endpoint& endpoint, std::function<std::string()> render_metrics)
      : render(std::move(render_metrics)), acceptor(io) {
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
  }

  // Everything runs on the server's one thread: `open_sessions` needs no lock.
  void accept() {
    acceptor.async_accept(io, [this](beast::error_code error, tcp::socket socket) {
      if (error == asio::error::operation_aborted)
        return;
      if (error) {
        retry.expires_after(k_accept_retry);
        retry.async_wait([this](beast::error_code waited) {
          if (!waited)
            accept();
        });
        return;
      }
      if (open_sessions < k_max_connections)
        std::make_shared<Session>(std::move(socket), render, open_sessions)->start();
      accept();  // a socket over the limit is closed as it goes out of scope
    });
  }

  std::function<std::string()> render;
  int open_sessions = 0;  // destroyed after `io`, whose handlers hold the sessions
  asio::io_context io{1};
  tcp::acceptor acceptor;
  asio::steady_timer retry{io};
  std::thread thread;
};

MetricsServer::MetricsServer(const std::string& listen, std::function<std::string()> render) {
  const auto address = parse_listen_address(listen);
  if (!address)
    throw std::runtime_error(fmt::format("metrics_listen '{}': {}", listen, address.error()));
  const tcp::endpoint endpoint{asio::ip::make_address(address->host), address->port};
  try {
    m_impl = std::make_unique<Impl>(endpoint, std::move(render));
  } catch (const boost::system::system_error& error) {
    throw std::runtime_error(fmt::format("metrics_listen '{}': cannot listen there: {}", listen,
                                         error.code().message()));
  }
  m_impl->accept();
  m_impl->thread = std::thread([impl = m_impl.get()] { impl->io.run(); });
}

MetricsServer::~MetricsServer() {
  asio::post(m_impl->io, [impl = m_impl.get()] { impl->io.stop(); });
  m_impl->thread.join();
}

}  // namespace retentiond
