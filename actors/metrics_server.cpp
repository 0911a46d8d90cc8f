#include "switchboard/actors/metrics_server.hpp"

#include <thread>
#include <utility>  // Boost 1.74's asio/awaitable.hpp needs std::exchange

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "switchboard/router/host_port.hpp"

namespace switchboard::actors {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct MetricsServer::Impl {
  Impl(MetricsOptions o, Render t, Render j) : options(std::move(o)), text(std::move(t)), json(std::move(j)) {}

  void accept();

  MetricsOptions options;
  Render text, json;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::uint16_t bound_port = 0;
  std::thread thread;
};

namespace {

// A scraper that sends nothing for this long is dropped.
constexpr auto kRequestTimeout = std::chrono::seconds(10);

/// One scrape: read the request, answer it, close.
class Scrape : public std::enable_shared_from_this<Scrape> {
 public:
  Scrape(MetricsServer::Impl& server, tcp::socket&& socket) : server_(server), stream_(std::move(socket)) {}

  void read() {
    stream_.expires_after(kRequestTimeout);
    http::async_read(stream_, buffer_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (!ec) self->answer();
    });
  }

 private:
  void answer() {
    res_.version(req_.version());
    res_.keep_alive(false);
    res_.set(http::field::server, "switchboard-metrics");
    const std::string_view target(req_.target().data(), req_.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    if (path != "/metrics" && path != "/metrics.json") {
      res_.result(http::status::not_found);
      res_.set(http::field::content_type, "text/plain");
      res_.body() = "not found: the metrics are at /metrics (and /metrics.json)\n";
    } else if (req_.method() != http::verb::get) {
      res_.result(http::status::method_not_allowed);
      res_.set(http::field::allow, "GET");
      res_.set(http::field::content_type, "text/plain");
      res_.body() = "only GET\n";
    } else if (path == "/metrics") {
      res_.result(http::status::ok);
      res_.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
      res_.body() = server_.text();
    } else {
      res_.result(http::status::ok);
      res_.set(http::field::content_type, "application/json");
      res_.body() = server_.json();
    }
    res_.prepare_payload();
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    });
  }

  MetricsServer::Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::empty_body> req_;
  http::response<http::string_body> res_;
};

}  // namespace

void MetricsServer::Impl::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (!acceptor.is_open()) return;
    if (!ec) std::make_shared<Scrape>(*this, std::move(socket))->read();
    accept();
  });
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const MetricsOptions& options, Render text, Render json) {
  auto impl = std::make_unique<Impl>(options, std::move(text), std::move(json));
  try {
    const tcp::endpoint endpoint(asio::ip::make_address(options.address), options.port);
    impl->acceptor.open(endpoint.protocol());
    impl->acceptor.set_option(asio::socket_base::reuse_address(true));
    impl->acceptor.bind(endpoint);
    impl->acceptor.listen(asio::socket_base::max_listen_connections);
    impl->bound_port = impl->acceptor.local_endpoint().port();
  } catch (const std::exception& e) {
    return make_error(errc::unavailable, "cannot serve metrics on " + options.address + ":" +
                                             std::to_string(options.port) + ": " + e.what());
  }
  impl->accept();
  impl->thread = std::thread([impl = impl.get()] {
    while (true) {
      try {
        impl->ioc.run();
        return;
      } catch (const std::exception& e) {  // a failed scrape must not end the endpoint
        spdlog::error("metrics: {}", e.what());
      }
    }
  });
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->ioc, [impl = impl_.get()] {
    beast::error_code ec;
    impl->acceptor.close(ec);
    impl->ioc.stop();
  });
  impl_->thread.join();
}

std::uint16_t MetricsServer::port() const noexcept { return impl_->bound_port; }

std::string MetricsServer::url() const {
  return "http://" + router::format_host_port(asio::ip::make_address(impl_->options.address).to_string(), port()) +
         "/metrics";
}

}  // namespace switchboard::actors
