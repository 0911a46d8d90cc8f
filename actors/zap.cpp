#include "switchboard/actors/zap.hpp"

#include <pthread.h>

#include <array>
#include <vector>

#include <spdlog/spdlog.h>

#include "switchboard/transport/socket.hpp"

namespace switchboard::actors {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
std::atomic<std::uint64_t> next_control_id{0};

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

std::string zap_domain(const std::string& actor, std::string_view kind) { return actor + "." + std::string(kind); }

void ZapPolicy::admit(const std::string& key, std::string who, bool node) {
  auto& entry = keys[key];
  // A key listed twice keeps the widest rights (a node's) and its first name.
  if (entry.who.empty()) entry.who = std::move(who);
  entry.node = entry.node || node;
}

ZapVerdict zap_decide(const ZapPolicy& policy, std::string_view domain, std::string_view mechanism,
                      std::string_view key) {
  if (mechanism != "CURVE") return {false, {}, "mechanism " + std::string(mechanism) + ": only CURVE is accepted"};
  const auto it = policy.keys.find(std::string(key));
  if (it == policy.keys.end()) return {false, {}, "the key is not listed in the topology"};
  if (ends_with(domain, ".peers") && !it->second.node)
    return {false, {}, "the key of " + it->second.who + " may not use a node-to-node endpoint"};
  return {true, it->second.who, {}};
}

bool LogBudget::take(Clock::time_point now) {
  if (refilled_ == Clock::time_point{}) refilled_ = now;
  if (now - refilled_ >= interval_) {
    const auto periods = (now - refilled_) / interval_;
    tokens_ = static_cast<int>(std::min<std::int64_t>(burst_, tokens_ + periods));
    refilled_ += periods * interval_;
  }
  if (tokens_ > 0) {
    --tokens_;
    return true;
  }
  ++suppressed_;
  return false;
}

ZapHandler::ZapHandler(zmq::context_t& context, ZapPolicy policy, std::string owner)
    : context_(context),
      policy_(std::move(policy)),
      owner_(std::move(owner)),
      socket_(context, zmq::socket_type::router),
      control_(context, zmq::socket_type::pair) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind(kZapEndpoint);  // before this returns: no CURVE socket binds without it
  const std::string control_endpoint = "inproc://switchboard-zap-control-" + std::to_string(next_control_id++);
  control_.bind(control_endpoint);
  // The sockets move to the handler's thread; starting a thread is a full barrier.
  thread_ = std::thread([this, control_endpoint] { run(control_endpoint); });
}

ZapHandler::~ZapHandler() { stop(); }

void ZapHandler::stop() {
  if (!thread_.joinable()) return;
  control_.send(zmq::str_buffer("stop"), zmq::send_flags::none);
  thread_.join();
  control_.close();
}

void ZapHandler::describe(const std::string& domain, const std::string& endpoints) {
  std::lock_guard lock(described_mu_);
  described_[domain] = endpoints;
}

void ZapHandler::run(std::string control_endpoint) {
  pthread_setname_np(pthread_self(), "sb-zap");
  zmq::socket_t control(context_, zmq::socket_type::pair);
  control.connect(control_endpoint);
  for (;;) {
    std::array<zmq::pollitem_t, 2> items{{{socket_.handle(), 0, ZMQ_POLLIN, 0}, {control.handle(), 0, ZMQ_POLLIN, 0}}};
    transport::poll(items.data(), items.size(), std::chrono::milliseconds(-1));
    if (items[1].revents & ZMQ_POLLIN) break;
    if (items[0].revents & ZMQ_POLLIN) answer();
  }
  socket_.close();
}

void ZapHandler::answer() {
  // [routing id] [""] ["1.0"] [request id] [domain] [address] [identity] [mechanism] [credentials...]
  std::vector<zmq::message_t> request;
  if (!transport::recv_multipart_nowait(socket_, request)) return;
  if (request.size() < 8 || request[1].size() != 0 || transport::view(request[2]) != "1.0") {
    spdlog::error("{}: a malformed ZAP request ({} frames)", owner_, request.size());
    return;  // not from libzmq: nobody waits for an answer
  }
  const std::string_view domain = transport::view(request[4]), address = transport::view(request[5]),
                         mechanism = transport::view(request[7]);
  std::string key;
  if (mechanism == "CURVE" && request.size() >= 9 && request[8].size() == 32) {
    std::array<char, 41> text{};
    if (zmq_z85_encode(text.data(), static_cast<const std::uint8_t*>(request[8].data()), 32) != nullptr)
      key = text.data();
  }
  const ZapVerdict verdict = zap_decide(policy_, domain, mechanism, key);
  if (!verdict.allow) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    if (log_budget_.take(LogBudget::Clock::now())) {
      std::string endpoints;
      {
        std::lock_guard lock(described_mu_);
        if (auto it = described_.find(std::string(domain)); it != described_.end()) endpoints = " " + it->second;
      }
      const auto suppressed = log_budget_.take_suppressed();
      spdlog::warn("{}: refused a connection from {} to {}{}: key {}: {}{}", owner_, address, domain, endpoints,
                   key.empty() ? "(none)" : key, verdict.reason,
                   suppressed ? " (" + std::to_string(suppressed) + " more refusals not logged)" : "");
    }
  }
  const std::array<std::string_view, 8> reply = {
      transport::view(request[0]), "", "1.0", transport::view(request[3]), verdict.allow ? "200" : "400",
      verdict.allow ? "OK" : verdict.reason, verdict.user_id, ""};
  for (std::size_t i = 0; i < reply.size(); ++i)
    socket_.send(zmq::buffer(reply[i]), i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
}

}  // namespace switchboard::actors
