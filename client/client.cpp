#include "switchboard/client/client.hpp"
#include "switchboard/client/presence.hpp"

#include <algorithm>
#include <deque>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>

#include "switchboard/transport/codec.hpp"
#include "switchboard/transport/socket.hpp"

namespace switchboard::client {
namespace {

using SteadyClock = std::chrono::steady_clock;

Error as_error(const transport::ReplyBody& body) {
  const auto& e = std::get<transport::ErrorReply>(body);
  return Error{e.code, e.message};
}

template <class T>
Result<T> expect(Result<transport::ReplyBody> reply) {
  if (!reply) return reply.error();
  if (std::holds_alternative<transport::ErrorReply>(*reply)) return as_error(*reply);
  if (auto* v = std::get_if<T>(&*reply)) return std::move(*v);
  return make_error(errc::internal, "the node answered with an unexpected reply");
}

}  // namespace

std::optional<std::string> pick_endpoint(const std::string& endpoint, const std::vector<std::string>& pub) {
  auto scheme = [](const std::string& e) { return e.substr(0, e.find("://")); };
  for (const auto& p : pub) {
    if (scheme(p) != scheme(endpoint)) continue;
    if (scheme(p) != "tcp") return p;
    auto host = [](const std::string& e) {
      auto start = e.find("://") + 3;
      return e.substr(start, e.rfind(':') - start);
    };
    std::string h = host(p);
    if (h == "0.0.0.0" || h == "*" || h == "[::]" || h == "::")
      return "tcp://" + host(endpoint) + p.substr(p.rfind(':'));
    return p;
  }
  return std::nullopt;
}

Result<transport::CurveClient> load_local_keys(const std::filesystem::path& dir) {
  auto server = transport::load_curve_public(dir / "node.key.pub");
  if (!server) return server.error();
  auto own = transport::load_curve_keypair(dir / "client.key");
  if (!own) return own.error();
  return transport::CurveClient{std::move(*own), std::move(*server)};
}

void connect_socket(zmq::socket_t& socket, const ClientOptions& options, const std::string& endpoint) {
  if (options.curve && endpoint.rfind("inproc://", 0) != 0) transport::curve_client(socket, *options.curve);
  socket.connect(endpoint);
}

std::string Client::new_client_msg_id() {
  thread_local std::mt19937_64 random{(std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()};
  thread_local std::uint64_t prefix = random();
  thread_local std::uint64_t counter = random();
  // 32 lowercase hex digits: the prefix, then the counter (what the node's retry window
  // keeps in 16 bytes).
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string id(32, '0');
  const std::uint64_t parts[2] = {prefix, ++counter};
  for (int part = 0; part < 2; ++part)
    for (int i = 0; i < 16; ++i) id[static_cast<std::size_t>(part * 16 + i)] = kDigits[(parts[part] >> (60 - 4 * i)) & 0xf];
  return id;
}

Client::Client(ClientOptions options)
    : options_(std::move(options)),
      own_context_(options_.context ? nullptr : std::make_unique<zmq::context_t>()),
      context_(options_.context ? options_.context : own_context_.get()),
      link_(options_.endpoint, options_.curve.has_value()),
      sequencer_(Sequencer::Options{std::max<std::uint32_t>(options_.repair_page, 1), options_.idle_check}) {
  // Replies can be large (a history page); they come from the node we chose.
  reply_limits_.max_frame = 64u << 20;
  reply_limits_.max_string = 64u << 20;  // a backup's chunk is one binary of 1 MiB
  reply_limits_.max_array = 1u << 20;
  nodes_ = options_.endpoints.empty() ? std::vector<std::string>{options_.endpoint} : options_.endpoints;
  options_.endpoint = nodes_.front();
  open_req();
}

void Client::open_req() {
  req_ = zmq::socket_t(*context_, zmq::socket_type::dealer);
  req_monitor_.reset();
  link_ = LinkHealth(options_.endpoint, options_.curve.has_value());
  transport::Limits socket_limits;
  socket_limits.max_socket_message = reply_limits_.max_frame;
  transport::configure_outside(req_, socket_limits);
  req_.set(zmq::sockopt::linger, 0);
  // Never refuse a send: requests must leave in the order they were made. The queue
  // is bounded by max_in_flight (times max_attempts while the node is unreachable).
  req_.set(zmq::sockopt::sndhwm, 0);
  if (options_.endpoint.rfind("tcp://", 0) == 0) {
    static std::atomic<std::uint64_t> monitors{0};
    const std::string watch = "inproc://switchboard-client-monitor-" + std::to_string(++monitors);
    if (zmq_socket_monitor(req_.handle(), watch.c_str(),
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0)
      throw zmq::error_t();
    req_monitor_.emplace(*context_, zmq::socket_type::pair);
    req_monitor_->connect(watch);
  }
  connect_to_node(req_, options_.endpoint);
}

void Client::connect_to_node(zmq::socket_t& socket, const std::string& endpoint) {
  auto key = options_.node_keys.find(options_.endpoint);
  if (key == options_.node_keys.end() || !options_.curve) return connect_socket(socket, options_, endpoint);
  ClientOptions keyed = options_;  // the node in use has a public key of its own
  keyed.curve->server_public = key->second;
  connect_socket(socket, keyed, endpoint);
}

void Client::move_on() {
  node_ = (node_ + 1) % nodes_.size();
  options_.endpoint = nodes_[node_];
  ++moves_;
  open_req();
  const auto now = SteadyClock::now();
  // Sent again in the order they were made (ids grow), each with its id and cmid.
  std::vector<std::uint64_t> ids;
  ids.reserve(pending_.size());
  for (const auto& [id, p] : pending_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (auto id : ids) {
    Pending& p = pending_.at(id);
    p.deadline = now + options_.attempt_timeout;
    (void)req_.send(zmq::buffer(p.frame), zmq::send_flags::dontwait);
  }
  if (sub_) {
    sub_.reset();
    sub_moved_ = true;
  }
}

Client::~Client() = default;

void Client::send_history(transport::History request, PageDone done) {
  const std::uint64_t id = send_request(std::move(request), nullptr);
  pending_.at(id).page_done = std::move(done);
}

std::uint64_t Client::send_request(transport::RequestBody body, ReplyDone done, std::size_t messages,
                                   bool publishes) {
  std::uint64_t id = next_id_++;
  Pending p;
  p.frame = transport::encode_request(transport::Request{id, std::move(body), options_.as});
  p.deadline = SteadyClock::now() + options_.attempt_timeout;
  p.done = std::move(done);
  p.messages = messages;
  p.publishes = publishes;
  messages_in_flight_ += messages;
  if (publishes) ++publish_frames_;
  // Not sent now (queue full): the attempt times out and is sent again.
  (void)req_.send(zmq::buffer(p.frame), zmq::send_flags::dontwait);
  pending_.emplace(id, std::move(p));
  return id;
}

void Client::on_reply(std::string_view bytes) {
  auto frame = transport::ReplyFrame::read(bytes, reply_limits_);
  if (!frame) return;  // not ours to correlate; the request will be retried
  auto it = pending_.find(frame->id());
  if (it == pending_.end()) return;  // a late answer to an attempt already answered
  if (it->second.page_done) {
    auto done = std::move(it->second.page_done);
    forget(it);
    done(frame->history_page());
    return;
  }
  auto reply = frame->reply();
  if (!reply) return;  // unreadable past its id: the request will be retried
  if (resend_as_singles(reply->id, *reply)) return;
  auto done = std::move(it->second.done);
  forget(it);
  done(std::move(reply));
}

void Client::fail(Pending& p, Error error) {
  if (p.page_done) p.page_done(std::move(error));
  else p.done(std::move(error));
}

void Client::forget(std::unordered_map<std::uint64_t, Pending>::iterator it) {
  messages_in_flight_ -= it->second.messages;
  if (it->second.publishes) --publish_frames_;
  batch_frames_.erase(it->first);
  pending_.erase(it);
}

void Client::resend_expired() {
  auto now = SteadyClock::now();
  const bool others = nodes_.size() > 1;
  std::vector<std::uint64_t> failed;
  bool move = false;
  for (auto& [id, p] : pending_) {
    if (p.deadline > now) continue;
    if (p.attempts >= options_.max_attempts || (!others && !options_.wait_for_node && link_.refused())) {
      failed.push_back(id);
      continue;
    }
    ++p.attempts;
    p.deadline = now + options_.attempt_timeout;
    if (others) move = true;  // the node in use does not answer: all go to the next one
    else (void)req_.send(zmq::buffer(p.frame), zmq::send_flags::dontwait);
  }
  for (auto id : failed) {
    auto it = pending_.find(id);
    Pending p = std::move(it->second);
    forget(it);
    fail(p, Error{link_.refused() ? errc::unavailable : errc::timeout, link_.no_reply(p.attempts)});
  }
  if (move && !pending_.empty()) move_on();
}

void Client::pump(SteadyClock::time_point until, bool sub) {
  auto now = SteadyClock::now();
  for (const auto& [id, p] : pending_) until = std::min(until, p.deadline);
  auto wait = std::max<long>(0, std::chrono::ceil<Millis>(until - now).count());
  zmq::pollitem_t items[3] = {{req_.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, 0, ZMQ_POLLIN, 0},
                              {nullptr, 0, ZMQ_POLLIN, 0}};
  int n = 1;
  if (sub && sub_) items[n++].socket = sub_->handle();
  if (req_monitor_) items[n++].socket = req_monitor_->handle();  // a failure wakes the wait
  if (wait > 0) {
    transport::poll(items, n, Millis(wait));
  } else {
    // Nothing to wait for: try each socket without blocking. zmq_poll would make a poll(2)
    // call every time, which a caller of next(0) in a loop pays per empty look; a
    // non-blocking receive that finds nothing usually makes none.
    for (int i = 0; i < n; ++i) items[i].revents = ZMQ_POLLIN;
  }
  std::vector<zmq::message_t> parts;
  if (items[0].revents & ZMQ_POLLIN)
    for (int i = 0; i < 4096 && transport::recv_multipart_nowait(req_, parts); ++i)
      if (parts.size() == 1) on_reply(transport::view(parts[0]));
  if (sub && sub_ && (items[1].revents & ZMQ_POLLIN))
    for (int i = 0; i < 4096 && transport::recv_multipart_nowait(*sub_, parts); ++i) take_published(parts);
  watch_link();
  resend_expired();
  send_unsent();
}

void Client::watch_link() {
  if (!req_monitor_) return;
  std::vector<zmq::message_t> parts;
  // Each event: [2-byte event, 4-byte value][endpoint].
  while (transport::recv_multipart_nowait(*req_monitor_, parts)) {
    if (parts.empty() || parts[0].size() < 6) continue;
    std::uint16_t event = 0;
    std::uint32_t value = 0;
    std::memcpy(&event, parts[0].data(), sizeof event);
    std::memcpy(&value, static_cast<const char*>(parts[0].data()) + 2, sizeof value);
    link_.on_event(event, value);
  }
  auto broken = link_.broken();
  if (!broken) return;
  // No reply will come: every waiting request fails now, with what was seen.
  auto failing = std::move(pending_);
  pending_.clear();
  auto unsent = std::move(unsent_);
  unsent_.clear();
  messages_in_flight_ = 0;
  publish_frames_ = 0;
  for (auto& [id, p] : failing) fail(p, *broken);
  for (auto& run : unsent)
    for (auto& done : run.dones) done(*broken);
}

Result<transport::ReplyBody> Client::call(transport::RequestBody body) {
  std::optional<Result<transport::Reply>> result;
  send_request(std::move(body), [&](Result<transport::Reply> r) { result.emplace(std::move(r)); });
  while (!result) pump(SteadyClock::now() + Millis(1000));
  if (!*result) return result->error();
  return std::move(result->value().body);
}

Result<bool> Client::create_room(const std::string& room, const std::string& user, bool private_room) {
  auto r = expect<transport::CreateRoomOk>(call(transport::CreateRoom{room, user, private_room}));
  if (!r) return r.error();
  return r->created;
}
Result<bool> Client::add_member(const std::string& room, const std::string& user, Role role) {
  auto r = expect<transport::AddMemberOk>(call(transport::AddMember{room, user, role}));
  if (!r) return r.error();
  return r->added;
}
Result<bool> Client::remove_member(const std::string& room, const std::string& user) {
  auto r = expect<transport::RemoveMemberOk>(call(transport::RemoveMember{room, user}));
  if (!r) return r.error();
  return r->removed;
}
Result<bool> Client::ban(const std::string& room, const std::string& user) {
  auto r = expect<transport::BanOk>(call(transport::Ban{room, user}));
  if (!r) return r.error();
  return r->banned;
}
Result<bool> Client::unban(const std::string& room, const std::string& user) {
  auto r = expect<transport::UnbanOk>(call(transport::Unban{room, user}));
  if (!r) return r.error();
  return r->unbanned;
}
Result<bool> Client::kick(const std::string& room, const std::string& user) {
  auto r = expect<transport::KickOk>(call(transport::Kick{room, user}));
  if (!r) return r.error();
  return r->removed;
}
Result<void> Client::disconnect(const std::string& user) {
  auto r = expect<transport::DisconnectOk>(call(transport::Disconnect{user}));
  if (!r) return r.error();
  return {};
}
Result<bool> Client::set_role(const std::string& room, const std::string& user, Role role) {
  auto r = expect<transport::SetRoleOk>(call(transport::SetRole{room, user, role}));
  if (!r) return r.error();
  return r->changed;
}
Result<bool> Client::delete_room(const std::string& room) {
  auto r = expect<transport::DeleteRoomOk>(call(transport::DeleteRoom{room}));
  if (!r) return r.error();
  return r->deleted;
}
Result<bool> Client::join(const std::string& room, const std::string& user) {
  auto r = expect<transport::JoinOk>(call(transport::Join{room, user}));
  if (!r) return r.error();
  return r->joined;
}
Result<bool> Client::leave(const std::string& room, const std::string& user) {
  auto r = expect<transport::LeaveOk>(call(transport::Leave{room, user}));
  if (!r) return r.error();
  return r->left;
}
Result<transport::ShardsOk> Client::shards() { return expect<transport::ShardsOk>(call(transport::ListShards{})); }

Result<bool> Client::set_receipts(const std::string& room, bool receipts) {
  auto r = expect<transport::SetReceiptsOk>(call(transport::SetReceipts{room, receipts}));
  if (!r) return r.error();
  return r->changed;
}

Result<transport::SetNotifyOk> Client::set_notify(const std::string& room, const std::string& user,
                                                  transport::NotifyLevel level) {
  return expect<transport::SetNotifyOk>(call(transport::SetNotify{room, user, level}));
}

Result<transport::ReadMarkersOk> Client::read_markers(const std::string& room) {
  return expect<transport::ReadMarkersOk>(call(transport::ReadMarkers{room}));
}

Result<transport::SetRetentionOk> Client::set_retention(transport::SetRetention request) {
  return expect<transport::SetRetentionOk>(call(std::move(request)));
}

Result<std::uint64_t> Client::trim_history(const std::string& room, std::uint64_t before) {
  auto r = expect<transport::TrimHistoryOk>(call(transport::TrimHistory{room, before}));
  if (!r) return r.error();
  return r->first_seq;
}

Result<transport::ImportBatchOk> Client::import_batch(transport::ImportBatch batch) {
  return expect<transport::ImportBatchOk>(call(std::move(batch)));
}

void Client::import_batch_async(transport::ImportBatch batch, ImportDone done) {
  const std::size_t items = batch.items.size();
  while (messages_in_flight_ > 0 && messages_in_flight_ + items > options_.max_in_flight)
    pump(SteadyClock::now() + Millis(100), true);
  send_request(
      std::move(batch),
      [done = std::move(done)](Result<transport::Reply> reply) {
        done(reply ? expect<transport::ImportBatchOk>(std::move(reply->body))
                   : Result<transport::ImportBatchOk>(reply.error()));
      },
      items);
}

Result<transport::RoomsOk> Client::rooms_summary(const std::string& user, std::uint32_t limit,
                                                 std::optional<transport::SummaryCursor> after) {
  return expect<transport::RoomsOk>(call(transport::ListRooms{user, limit, std::move(after)}));
}

Result<transport::RoomsOk> Client::rooms(const std::optional<std::string>& user) {
  return expect<transport::RoomsOk>(call(transport::ListRooms{user}));
}
Result<transport::MarkReadOk> Client::mark_read(const std::string& room, const std::string& user, std::uint64_t seq) {
  return expect<transport::MarkReadOk>(call(transport::MarkRead{room, user, seq}));
}
void Client::mark_read_async(const std::string& room, const std::string& user, std::uint64_t seq, MarkReadDone done) {
  while (messages_in_flight_ >= options_.max_in_flight) pump(SteadyClock::now() + Millis(100), true);
  send_request(transport::MarkRead{room, user, seq}, [done = std::move(done)](Result<transport::Reply> reply) {
    done(reply ? expect<transport::MarkReadOk>(std::move(reply->body)) : Result<transport::MarkReadOk>(reply.error()));
  });
}
Result<std::vector<std::string>> Client::members(const std::string& room) {
  auto r = members_with_roles(room);
  if (!r) return r.error();
  return std::move(r->members);
}
Result<transport::MembersOk> Client::members_with_roles(const std::string& room) {
  return expect<transport::MembersOk>(call(transport::Members{room}));
}
Result<std::string> Client::call_service(const std::string& service, const std::string& user,
                                         const std::string& body) {
  auto r = expect<transport::CallOk>(call(transport::Call{service, user, body}));
  if (!r) return r.error();
  return std::move(r->body);
}
Result<std::uint64_t> Client::last_seq(const std::string& room) {
  auto r = expect<transport::LastSeqOk>(call(transport::LastSeq{room}));
  if (!r) return r.error();
  return r->seq;
}
Result<transport::HelloOk> Client::hello() { return expect<transport::HelloOk>(call(transport::Hello{})); }

Result<transport::HistoryOk> Client::history(const std::string& room, const HistoryQuery& query) {
  return expect<transport::HistoryOk>(
      call(transport::History{room, query.limit, query.before, query.after, query.thread}));
}

Result<transport::HistoryPage> Client::history_page(const std::string& room, const HistoryQuery& query) {
  std::optional<Result<transport::HistoryPage>> result;
  send_history(transport::History{room, query.limit, query.before, query.after, query.thread},
               [&](Result<transport::HistoryPage> r) { result.emplace(std::move(r)); });
  while (!result) pump(SteadyClock::now() + Millis(1000));
  return std::move(*result);
}

Result<std::uint64_t> Client::read_history(const std::string& room, std::uint64_t after, const PageReader& each,
                                           std::uint32_t page) {
  if (page == 0) return make_error(errc::bad_field, "read_history: a page of 0 messages");
  // Pages asked and not handed over yet, in seq order. A reply lands in its slot, which
  // stays valid if this call returns first (an abandoned ask's reply is dropped).
  struct Ask {
    std::uint64_t after = 0;
    std::shared_ptr<std::optional<Result<transport::HistoryPage>>> reply;
  };
  std::deque<Ask> asks;
  std::uint64_t asked_to = after;  // the next ask starts after this seq
  auto ask = [&] {
    Ask a{asked_to, std::make_shared<std::optional<Result<transport::HistoryPage>>>()};
    send_history(transport::History{room, page, std::nullopt, asked_to},
                 [slot = a.reply](Result<transport::HistoryPage> r) { slot->emplace(std::move(r)); });
    asks.push_back(std::move(a));
    asked_to += page;
  };
  std::uint64_t delivered = after;
  ask();
  ask();
  while (!asks.empty()) {
    Ask front = std::move(asks.front());
    asks.pop_front();
    while (!*front.reply) pump(SteadyClock::now() + Millis(1000));
    Result<transport::HistoryPage>& got = **front.reply;
    if (!got) return got.error();
    const std::size_t count = got->messages.size();
    if (count == 0) return delivered;  // the room's end
    // The room holds nothing below its first seq (trimmed): the first page may start there.
    const bool truncated = got->first_seq > front.after + 1 && got->messages.front().seq == got->first_seq;
    if (got->messages.front().seq != front.after + 1 && !truncated)
      return make_error(errc::internal, "read_history: a page of '" + room + "' after seq " +
                                            std::to_string(front.after) + " began at seq " +
                                            std::to_string(got->messages.front().seq));
    const bool full = count == page, last = !got->more;
    delivered = got->messages.back().seq;
    if (full && !last) ask();  // keeps two pages on their way while `each` runs
    if (!each(*got) || last) return delivered;
    if (!full || truncated) {  // cut short at the node's byte limit, or after a trim: what was asked ahead is off
      asks.clear();
      asked_to = delivered;
      ask();
      ask();
    }
  }
  return delivered;
}

Result<transport::PublishOk> Client::publish(const std::string& room, const std::string& user,
                                             const std::string& body, std::string client_msg_id) {
  return publish(transport::Publish{room, user, std::move(client_msg_id), body});
}

Result<transport::PublishOk> Client::publish(transport::Publish message) {
  if (message.client_msg_id.empty()) message.client_msg_id = new_client_msg_id();
  return expect<transport::PublishOk>(call(std::move(message)));
}

Result<transport::PublishOk> Client::edit(const std::string& room, const std::string& user, std::uint64_t target,
                                          const std::string& body) {
  transport::Publish p{room, user, {}, body};
  p.kind = EntryKind::edit;
  p.target = target;
  return publish(std::move(p));
}

Result<transport::PublishOk> Client::remove(const std::string& room, const std::string& user, std::uint64_t target) {
  transport::Publish p{room, user, {}, {}};
  p.kind = EntryKind::remove;
  p.target = target;
  return publish(std::move(p));
}

Result<transport::PublishOk> Client::react(const std::string& room, const std::string& user, std::uint64_t target,
                                           const std::string& key, bool on) {
  transport::Publish p{room, user, {}, {}};
  p.kind = EntryKind::react;
  p.target = target;
  p.key = key;
  p.on = on;
  return publish(std::move(p));
}

namespace {
// What a frame may hold: the node's frame limit, less room for its envelope.
constexpr std::size_t kFrameBytes = 192 * 1024;
}  // namespace

void Client::publish_async(const std::string& room, const std::string& user, const std::string& body,
                           PublishDone done, std::string client_msg_id) {
  publish_async(transport::Publish{room, user, std::move(client_msg_id), body}, std::move(done));
}

void Client::publish_async(transport::Publish message, PublishDone done) {
  while (messages_in_flight_ >= options_.max_in_flight) pump(SteadyClock::now() + Millis(100), true);
  if (message.client_msg_id.empty()) message.client_msg_id = new_client_msg_id();
  if (message.kind != EntryKind::message || message.reply_to != 0 || message.thread != 0) {  // a frame of its own, in line
    unsent_.push_back(Run{message.room, message.user, {}, {}, 0, std::nullopt});
    unsent_.back().dones.push_back(std::move(done));
    unsent_.back().entry = std::move(message);
    ++messages_in_flight_;
    send_unsent();
    return;
  }
  const std::size_t max_batch = batches_refused_ ? 1 : std::max<std::size_t>(1, options_.max_batch);
  std::size_t bytes = message.body.size() + message.client_msg_id.size() + 16;
  for (const auto& name : message.mentions) bytes += name.size() + 5;
  if (unsent_.empty() || unsent_.back().entry || unsent_.back().room != message.room ||
      unsent_.back().user != message.user || unsent_.back().items.size() >= max_batch ||
      unsent_.back().bytes + bytes > kFrameBytes)
    unsent_.push_back(Run{message.room, message.user, {}, {}, 0});
  Run& run = unsent_.back();
  run.items.push_back({std::move(message.client_msg_id), std::move(message.body), std::move(message.mentions)});
  run.dones.push_back(std::move(done));
  run.bytes += bytes;
  ++messages_in_flight_;
  send_unsent();
}

void Client::send_unsent() {
  // An edit, delete or react at the front goes at once: it cannot join a batch frame, so
  // it waits for no frame to be answered (only for max_in_flight, as any request).
  while (!unsent_.empty() && (unsent_.front().entry ||
                              publish_frames_ < std::max<std::size_t>(1, options_.publish_frames_in_flight))) {
    Run run = std::move(unsent_.front());
    unsent_.pop_front();
    if (run.entry) {
      --messages_in_flight_;  // counted again by send_request
      send_request(std::move(*run.entry),
                   [done = std::move(run.dones[0])](Result<transport::Reply> reply) {
                     if (!reply) return done(reply.error());
                     done(expect<transport::PublishOk>(std::move(reply->body)));
                   },
                   1, false);
      continue;
    }
    const std::size_t n = run.items.size();
    messages_in_flight_ -= n;  // counted again by send_request
    if (n == 1) {  // one alone goes as a plain publish: any node takes it
      send_request(transport::Publish{std::move(run.room), std::move(run.user), std::move(run.items[0].client_msg_id),
                                      std::move(run.items[0].body), std::move(run.items[0].mentions)},
                   [done = std::move(run.dones[0])](Result<transport::Reply> reply) {
                     if (!reply) return done(reply.error());
                     done(expect<transport::PublishOk>(std::move(reply->body)));
                   },
                   1, true);
      continue;
    }
    const std::string room = run.room;
    const std::uint64_t id = send_request(
        transport::PublishBatch{std::move(run.room), std::move(run.user), std::move(run.items)},
        [this, room, dones = std::move(run.dones)](Result<transport::Reply> reply) mutable {
          Result<transport::PublishBatchOk> results = reply ? expect<transport::PublishBatchOk>(std::move(reply->body))
                                                            : Result<transport::PublishBatchOk>(reply.error());
          for (std::size_t i = 0; i < dones.size(); ++i) {
            if (!results) {
              dones[i](results.error());
            } else if (i >= results->results.size()) {
              dones[i](make_error(errc::internal, "the node answered fewer items than the frame carried"));
            } else {
              const auto& r = results->results[i];
              if (r.code != errc::ok) dones[i](Error{r.code, r.message});
              else dones[i](transport::PublishOk{room, r.seq, r.ts_ms, r.duplicate});
            }
          }
        },
        n, true);
    batch_frames_.insert(id);
  }
}

bool Client::resend_as_singles(std::uint64_t id, const transport::Reply& reply) {
  // A node from before publish_batch: the same items again, one frame each.
  auto it = pending_.find(id);
  const auto* e = std::get_if<transport::ErrorReply>(&reply.body);
  if (it == pending_.end() || !e || e->code != errc::unknown_op || !batch_frames_.count(id)) return false;
  auto request = transport::decode_request(it->second.frame, reply_limits_);
  auto* batch = request.body ? std::get_if<transport::PublishBatch>(&*request.body) : nullptr;
  if (!batch) return false;
  batches_refused_ = true;
  auto done = std::move(it->second.done);
  forget(it);
  // The frame's callback is kept to answer each item: wrapped once per item below.
  auto shared = std::make_shared<ReplyDone>(std::move(done));
  auto answers = std::make_shared<std::vector<transport::ItemResult>>(batch->items.size());
  auto left = std::make_shared<std::size_t>(batch->items.size());
  for (std::size_t i = 0; i < batch->items.size(); ++i) {
    Run single{batch->room, batch->user, {std::move(batch->items[i])}, {}, 0};
    single.dones.push_back([shared, answers, left, i, room = batch->room](const Result<transport::PublishOk>& r) {
      (*answers)[i] = r ? transport::ItemResult{r->seq, r->ts_ms, r->duplicate}
                        : transport::ItemResult{0, 0, false, r.error().code, r.error().message};
      if (--*left == 0) (*shared)(transport::Reply{0, transport::PublishBatchOk{room, std::move(*answers)}});
    });
    unsent_.insert(unsent_.begin() + static_cast<std::ptrdiff_t>(i), std::move(single));
    ++messages_in_flight_;
  }
  return true;
}

bool Client::wait_all(Millis timeout) {
  auto deadline = SteadyClock::now() + timeout;
  send_unsent();
  while (!pending_.empty() || !unsent_.empty()) {
    if (SteadyClock::now() >= deadline) return false;
    pump(deadline, true);
  }
  return true;
}

// ---- subscriptions ---------------------------------------------------------------

Result<void> Client::connect_sub() {
  if (sub_) return {};
  auto info = hello();
  if (!info) return info.error();
  auto endpoint = pick_endpoint(options_.endpoint, info->pub);
  if (!endpoint)
    return make_error(errc::unavailable, "the node announces no publish endpoint reachable like " + options_.endpoint);
  sub_.emplace(*context_, zmq::socket_type::sub);
  transport::Limits socket_limits;
  socket_limits.max_socket_message = reply_limits_.max_frame;
  transport::configure_outside(*sub_, socket_limits);
  sub_->set(zmq::sockopt::rcvhwm, options_.sub_rcvhwm);
  sub_->set(zmq::sockopt::linger, 0);
  sub_->set(zmq::sockopt::subscribe, transport::heads_topic());  // what shows a dropped tail
  connect_to_node(*sub_, *endpoint);
  return {};
}

Result<void> Client::resubscribe() {
  if (auto r = connect_sub(); !r) return r;
  sub_moved_ = false;
  for (const auto& room : followed_) sub_->set(zmq::sockopt::subscribe, transport::room_topic(room));
  for (const auto& user : read_users_) sub_->set(zmq::sockopt::subscribe, transport::read_topic(user));
  // What was published while no SUB followed: each room's last seq is asked of this
  // node, and the sequencer reads what it missed from history.
  sequencer_.recheck();
  Sequencer::Actions actions;
  sequencer_.tick(SteadyClock::now(), actions);
  carry_out(actions);
  return {};
}

Result<void> Client::subscribe(const std::string& room, std::optional<std::uint64_t> after_seq) {
  if (sub_moved_)
    if (auto r = resubscribe(); !r) return r;
  if (auto r = connect_sub(); !r) return r;
  // The SUB follows the room before its last seq is asked, so that what is published
  // after that answer comes live (or shows in a heads event).
  if (sequencer_.expect(room)) sub_->set(zmq::sockopt::subscribe, transport::room_topic(room));
  auto last = last_seq(room);
  if (!last) {
    if (sequencer_.cancel(room)) sub_->set(zmq::sockopt::unsubscribe, transport::room_topic(room));
    return last.error();
  }
  std::erase_if(ready_, [&](const RoomMessage& m) { return m.room == room; });
  sequencer_.follow(kSelf, room, after_seq.value_or(*last), *last, SteadyClock::now());
  followed_.insert(room);
  Sequencer::Actions actions;
  carry_out(actions);
  return {};
}

void Client::unsubscribe(const std::string& room) {
  followed_.erase(room);
  if (!sequencer_.unfollow(kSelf, room)) return;
  if (sub_) sub_->set(zmq::sockopt::unsubscribe, transport::room_topic(room));
  std::erase_if(ready_, [&](const RoomMessage& m) { return m.room == room; });
}

SubscriptionStats Client::subscription_stats() const noexcept {
  const auto& s = sequencer_.stats();
  return {s.live, s.repaired, s.duplicates, s.heads, s.heads_gaps, s.checks, s.fetches};
}

void Client::take_published(std::vector<zmq::message_t>& parts) {
  if (parts.size() != 2) return;
  const auto now = SteadyClock::now();
  Sequencer::Actions actions;
  if (transport::view(parts[0]) == transport::heads_topic()) {
    if (auto heads = transport::decode_heads(transport::view(parts[1]), reply_limits_))
      sequencer_.on_heads(heads->node, heads->number, heads->rooms, now);
  } else if (transport::is_read_topic(transport::view(parts[0]))) {
    if (auto read = transport::decode_read_event(transport::view(parts[1]), reply_limits_);
        read && read_users_.count(read->user))
      reads_ready_.push_back(std::move(*read));
  } else if (auto message = transport::decode_message(transport::view(parts[1]), reply_limits_)) {
    const std::string room = message->room;
    const std::uint64_t seq = message->seq;
    sequencer_.on_live(room, {seq, std::move(*message)}, now, actions);
  }
  carry_out(actions);
}

void Client::carry_out(Sequencer::Actions& actions) {
  for (auto& t : actions.truncated) truncations_.push_back({std::move(t.room), t.first_seq});
  actions.truncated.clear();
  for (auto& d : actions.deliver) ready_.push_back(std::move(d.frame));
  actions.deliver.clear();
  sequencer_.plan(actions);
  for (auto& f : actions.fetch)
    send_request(transport::History{f.room, f.limit, std::nullopt, f.after},
                 [this, room = f.room, after = f.after](Result<transport::Reply> reply) {
                   auto page = reply ? expect<transport::HistoryOk>(std::move(reply->body))
                                     : Result<transport::HistoryOk>(reply.error());
                   Sequencer::Actions next;
                   if (!page) {
                     repair_error_ = page.error();
                     sequencer_.on_fetch_failed(room, after, SteadyClock::now());
                     return;
                   }
                   std::vector<Sequencer::Message> messages;
                   messages.reserve(page->messages.size());
                   for (auto& m : page->messages) messages.push_back({m.seq, std::move(m)});
                   sequencer_.on_history(room, after, std::move(messages), page->more, SteadyClock::now(), next,
                                         page->first_seq);
                   carry_out(next);
                 });
  for (auto& room : actions.last_seq)
    send_request(transport::LastSeq{room}, [this, room](Result<transport::Reply> reply) {
      auto last = reply ? expect<transport::LastSeqOk>(std::move(reply->body)) : Result<transport::LastSeqOk>(reply.error());
      if (!last) {
        repair_error_ = last.error();
        return sequencer_.on_last_seq_failed(room, SteadyClock::now());
      }
      sequencer_.on_last_seq(room, last->seq);
      Sequencer::Actions next;
      carry_out(next);
    });
  actions = {};
}

Result<void> Client::follow_reads(const std::string& user) {
  if (sub_moved_)
    if (auto r = resubscribe(); !r) return r;
  if (auto r = connect_sub(); !r) return r;
  if (read_users_.insert(user).second) sub_->set(zmq::sockopt::subscribe, transport::read_topic(user));
  return {};
}

void Client::unfollow_reads(const std::string& user) {
  if (read_users_.erase(user) == 0) return;
  if (sub_) sub_->set(zmq::sockopt::unsubscribe, transport::read_topic(user));
  std::erase_if(reads_ready_, [&](const transport::ReadEvent& e) { return e.user == user; });
}

std::optional<transport::ReadEvent> Client::next_read(Millis timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (sub_moved_) (void)resubscribe();  // tried again at the next call if it failed
    if (!reads_ready_.empty()) {
      transport::ReadEvent e = std::move(reads_ready_.front());
      reads_ready_.pop_front();
      return e;
    }
    if (SteadyClock::now() >= deadline) return std::nullopt;
    pump(deadline, true);
  }
}

Result<std::optional<RoomMessage>> Client::next(Millis timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    if (sub_moved_)  // moved to another node: follow there (a failure is said, and tried again next time)
      if (auto r = resubscribe(); !r) return r.error();
    if (repair_error_) {
      Error e = std::move(*repair_error_);
      repair_error_.reset();
      return e;
    }
    if (!ready_.empty()) {
      RoomMessage m = std::move(ready_.front());
      ready_.pop_front();
      return std::optional<RoomMessage>(std::move(m));
    }
    pump(SteadyClock::now(), true);  // take whatever is waiting, without blocking
    if (!ready_.empty() || repair_error_) continue;
    const auto now = SteadyClock::now();
    Sequencer::Actions actions;
    sequencer_.tick(now, actions);
    carry_out(actions);
    if (now >= deadline) return std::optional<RoomMessage>();
    pump(std::min(deadline, sequencer_.next_tick().value_or(deadline)), true);
  }
}

}  // namespace switchboard::client
