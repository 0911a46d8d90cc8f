// switchboard stats: a running node's metrics, read from its metrics endpoint
// (GET /metrics.json, the same figures as the Prometheus text of /metrics).
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <utility>  // Boost 1.74's asio/awaitable.hpp needs std::exchange

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "switchboard/actors/bridge.hpp"
#include "switchboard/cli/commands.hpp"

namespace switchboard::cli {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using nlohmann::json;

constexpr auto kScrapeTimeout = std::chrono::seconds(10);

/// GET `target` from host:port; the body, or throws std::runtime_error saying why.
std::string http_get(const std::string& host, std::uint16_t port, const std::string& target) {
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(kScrapeTimeout);
  stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address(host), port));
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, host);
  req.set(http::field::user_agent, "switchboard-stats");
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  beast::error_code ec;
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  if (res.result() != http::status::ok)
    throw std::runtime_error("GET " + target + " answered " + std::to_string(res.result_int()) +
                             " (is this a Switchboard metrics endpoint?)");
  return res.body();
}

std::string labels_text(const json& labels) {
  std::string out;
  for (const auto& [name, value] : labels.items())
    if (name != "node") out += (out.empty() ? "" : " ") + name + "=" + value.get<std::string>();
  return out.empty() ? "-" : out;
}

std::string number(double v) {
  std::ostringstream out;
  if (v == std::floor(v) && std::fabs(v) < 1e15) out << static_cast<long long>(v);
  else out << std::setprecision(4) << v;
  return out.str();
}

/// A value of a metric named *_seconds or *_bytes, in a unit people read.
std::string amount(double v, const std::string& name) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(v == 0 ? 0 : 2);
  if (name.ends_with("_seconds")) {
    if (v < 1e-3) out << v * 1e6 << " us";
    else if (v < 1) out << v * 1e3 << " ms";
    else out << v << " s";
  } else if (name.ends_with("_bytes")) {
    if (v < 1024 * 1024) out << v / 1024 << " KiB";
    else if (v < 1024.0 * 1024 * 1024) out << v / (1024 * 1024) << " MiB";
    else out << v / (1024.0 * 1024 * 1024) << " GiB";
  } else {
    return number(v);
  }
  return out.str();
}

/// The bucket bound under which a `q` share of the samples fall ("> last" past it).
std::string quantile(const json& sample, double q, const std::string& name) {
  const double count = sample["count"].get<double>();
  for (const auto& b : sample["buckets"])
    if (b[1].get<double>() >= q * count) return "<= " + amount(b[0].get<double>(), name);
  const auto& buckets = sample["buckets"];
  return buckets.empty() ? "?" : "> " + amount(buckets.back()[0].get<double>(), name);
}

void print_table(const json& scrape, const std::string& address) {
  std::cout << "node " << scrape["node"].get<std::string>() << " (metrics at " << address << ")\n";
  std::vector<std::array<std::string, 3>> rows;
  std::size_t zero = 0;
  for (const auto& family : scrape["metrics"]) {
    const std::string name = family["name"], type = family["type"];
    for (const auto& sample : family["samples"]) {
      std::string value;
      if (type == "histogram") {
        const double count = sample["count"].get<double>();
        if (count == 0) { ++zero; continue; }
        value = "count " + number(count) + ", mean " + amount(sample["sum"].get<double>() / count, name) + ", p50 " +
                quantile(sample, 0.5, name) + ", p99 " + quantile(sample, 0.99, name);
      } else {
        const double v = sample["value"].get<double>();
        if (type == "counter" && v == 0) { ++zero; continue; }
        value = amount(v, name);
      }
      rows.push_back({name, labels_text(sample["labels"]), value});
    }
  }
  std::size_t w0 = 6, w1 = 6;
  for (const auto& r : rows) {
    w0 = std::max(w0, r[0].size());
    w1 = std::max(w1, r[1].size());
  }
  std::cout << std::left << std::setw(static_cast<int>(w0)) << "METRIC" << "  " << std::setw(static_cast<int>(w1))
            << "LABELS" << "  VALUE\n";
  for (const auto& r : rows)
    std::cout << std::setw(static_cast<int>(w0)) << r[0] << "  " << std::setw(static_cast<int>(w1)) << r[1] << "  "
              << r[2] << "\n";
  if (zero > 0) std::cout << "(" << zero << " counters and histograms at zero not shown; --json has them)\n";
}

}  // namespace

int stats(const std::string& address, bool as_json) {
  // HOST:PORT, or the URL the ready line prints (http://HOST:PORT/metrics).
  std::string_view host_port = address;
  if (host_port.rfind("http://", 0) == 0) {
    host_port.remove_prefix(7);
    if (host_port.size() >= 8 && host_port.substr(host_port.size() - 8) == "/metrics") host_port.remove_suffix(8);
    if (!host_port.empty() && host_port.back() == '/') host_port.remove_suffix(1);
  }
  auto where = actors::parse_bridge_address(host_port);
  if (!where || where->port == 0) {
    std::cerr << "switchboard: --connect must be HOST:PORT of a node's metrics endpoint (an IP address and a port), "
                 "or its URL http://HOST:PORT/metrics; got '" << address << "'\n";
    return 2;
  }
  json scrape;
  try {
    scrape = json::parse(http_get(where->host, where->port, "/metrics.json"));
    if (!scrape.contains("metrics") || !scrape["metrics"].is_array() || !scrape.contains("node"))
      throw std::runtime_error("the answer is not a Switchboard node's metrics");
  } catch (const std::exception& e) {
    std::cerr << "switchboard: cannot read metrics from " << address << ": " << e.what()
              << " (is the node running, with --metrics at this address?)\n";
    return 1;
  }
  if (as_json) std::cout << scrape.dump(2) << "\n";
  else print_table(scrape, address);
  return 0;
}

}  // namespace switchboard::cli
