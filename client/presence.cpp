#include "switchboard/client/presence.hpp"

#include "switchboard/transport/codec.hpp"
#include "switchboard/transport/socket.hpp"

namespace switchboard::client {
namespace {

using SteadyClock = std::chrono::steady_clock;
using transport::PresenceReplyBody;
using transport::PresenceRequestBody;

zmq::socket_t make_dealer(zmq::context_t& context, const std::string& endpoint, const ClientOptions& options) {
  zmq::socket_t s(context, zmq::socket_type::dealer);
  transport::configure_outside(s, transport::Limits{});
  s.set(zmq::sockopt::linger, 0);
  connect_socket(s, options, endpoint);
  return s;
}

/// One request, `attempts` tries of `timeout` each, answered by the reply with its id.
/// `as`: the user asking (ClientOptions::as).
Result<PresenceReplyBody> call(zmq::socket_t& socket, std::uint64_t id, PresenceRequestBody body, int attempts,
                               Millis timeout, const std::optional<std::string>& as = std::nullopt) {
  static const transport::Limits limits;
  const std::string frame = transport::encode_presence_request({id, std::move(body), as});
  for (int attempt = 0; attempt < attempts; ++attempt) {
    (void)socket.send(zmq::buffer(frame), zmq::send_flags::dontwait);
    const auto deadline = SteadyClock::now() + timeout;
    for (auto now = SteadyClock::now(); now < deadline; now = SteadyClock::now()) {
      zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
      transport::poll(&item, 1, std::chrono::ceil<Millis>(deadline - now));
      zmq::message_t m;
      while (socket.recv(m, zmq::recv_flags::dontwait)) {
        auto reply = transport::decode_presence_reply(transport::view(m), limits);
        if (reply && reply->id == id) return std::move(reply->body);  // others: late answers to old requests
      }
    }
  }
  return make_error(errc::timeout, "no reply from the presence actor after " + std::to_string(attempts) + " attempts");
}

template <class T>
Result<T> expect(Result<PresenceReplyBody> reply) {
  if (!reply) return reply.error();
  if (auto* e = std::get_if<transport::ErrorReply>(&*reply)) return Error{e->code, e->message};
  if (auto* v = std::get_if<T>(&*reply)) return std::move(*v);
  return make_error(errc::internal, "the presence actor answered with an unexpected reply");
}

}  // namespace

Result<std::unique_ptr<PresenceClient>> PresenceClient::connect(Client& client, const ClientOptions& options) {
  auto info = client.hello();
  if (!info) return info.error();
  auto requests = pick_endpoint(options.endpoint, info->presence);
  auto events = pick_endpoint(options.endpoint, info->presence_pub);
  if (!requests || !events)
    return make_error(errc::unavailable, "the node announces no presence endpoint reachable like " + options.endpoint);
  return std::make_unique<PresenceClient>(PresenceEndpoints{*requests, *events}, options);
}

PresenceClient::PresenceClient(PresenceEndpoints endpoints, const ClientOptions& options)
    : endpoints_(std::move(endpoints)),
      options_(options),
      own_context_(options.context ? nullptr : std::make_unique<zmq::context_t>()),
      context_(options.context ? options.context : own_context_.get()),
      req_(make_dealer(*context_, endpoints_.requests, options_)) {}

PresenceClient::~PresenceClient() { (void)close(1); }

Result<void> PresenceClient::open(const std::string& user) {
  if (!session_.empty()) return make_error(errc::bad_field, "this presence client has a session open already");
  std::string session = Client::new_client_msg_id();
  auto ok = expect<transport::SessionOpenOk>(call(req_, next_id_++, transport::SessionOpen{session, user},
                                                  options_.max_attempts, options_.attempt_timeout, options_.as));
  if (!ok) return ok.error();
  user_ = user;
  session_ = std::move(session);
  heartbeat_ = Millis(ok->heartbeat_ms);
  stop_ = false;
  keeper_ = std::thread([this] { keep_alive(); });
  return {};
}

void PresenceClient::keep_alive() {
  // Its own socket: ZeroMQ sockets belong to one thread.
  zmq::socket_t socket = make_dealer(*context_, endpoints_.requests, options_);
  std::uint64_t id = 1;
  std::unique_lock lock(mu_);
  while (!wake_.wait_for(lock, heartbeat_, [&] { return stop_; })) {
    lock.unlock();
    // One attempt per beat: a lost one is simply the next beat's business.
    auto beat = call(socket, id++, transport::Heartbeat{session_}, 1, heartbeat_, options_.as);
    ++heartbeats_;
    if (beat && std::holds_alternative<transport::ErrorReply>(*beat) &&
        std::get<transport::ErrorReply>(*beat).code == errc::unknown_session) {
      // The node forgot us (restart, or we were stopped past the TTL): announce again.
      if (call(socket, id++, transport::SessionOpen{session_, user_}, 1, heartbeat_, options_.as)) ++reopened_;
    }
    lock.lock();
  }
}

Result<void> PresenceClient::close(int attempts) {
  if (session_.empty()) return {};
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (keeper_.joinable()) keeper_.join();
  auto closed = expect<transport::SessionCloseOk>(
      call(req_, next_id_++, transport::SessionClose{session_}, attempts, options_.attempt_timeout, options_.as));
  session_.clear();
  if (!closed && closed.error().code != errc::unknown_session) return closed.error();
  return {};
}

Result<transport::WhoOk> PresenceClient::who(const std::string& room) {
  return expect<transport::WhoOk>(
      call(req_, next_id_++, transport::Who{room}, options_.max_attempts, options_.attempt_timeout, options_.as));
}

Result<transport::UserStatusOk> PresenceClient::status(const std::string& user) {
  return expect<transport::UserStatusOk>(
      call(req_, next_id_++, transport::UserStatus{user}, options_.max_attempts, options_.attempt_timeout, options_.as));
}

Result<void> PresenceClient::set_status(transport::Availability status, const std::string& text) {
  auto r = expect<transport::SetStatusOk>(call(req_, next_id_++, transport::SetStatus{session_, status, text},
                                               options_.max_attempts, options_.attempt_timeout, options_.as));
  if (!r) return r.error();
  return {};
}

Result<void> PresenceClient::typing(const std::string& room) {
  auto r = expect<transport::TypingOk>(
      call(req_, next_id_++, transport::Typing{session_, room}, options_.max_attempts, options_.attempt_timeout, options_.as));
  if (!r) return r.error();
  return {};
}

Result<void> PresenceClient::follow(const std::string& room) {
  if (!sub_) {
    sub_.emplace(*context_, zmq::socket_type::sub);
    transport::configure_outside(*sub_, transport::Limits{});
    sub_->set(zmq::sockopt::linger, 0);
    connect_socket(*sub_, options_, endpoints_.events);
  }
  sub_->set(zmq::sockopt::subscribe, transport::room_topic(room));
  return {};
}

std::optional<transport::PresenceEvent> PresenceClient::next_event(Millis timeout) {
  if (!sub_) return std::nullopt;
  const auto deadline = SteadyClock::now() + timeout;
  std::vector<zmq::message_t> parts;
  for (;;) {
    while (transport::recv_multipart_nowait(*sub_, parts)) {
      if (parts.size() != 2) continue;
      auto event = transport::decode_presence_event(transport::view(parts[1]), transport::Limits{});
      if (event) return std::move(*event);
    }
    auto now = SteadyClock::now();
    if (now >= deadline) return std::nullopt;
    zmq::pollitem_t item{sub_->handle(), 0, ZMQ_POLLIN, 0};
    transport::poll(&item, 1, std::chrono::ceil<Millis>(deadline - now));
  }
}

}  // namespace switchboard::client
