// switchboard::Client: what backend services embed and what the CLI uses.
//
// One Client is one DEALER connection to a node (plus, once something is subscribed,
// one SUB connection to its publish endpoint). Like a ZeroMQ socket it belongs to one
// thread at a time; use one Client per thread.
//
// Every request is retried on timeout with the same request id and, for publishes,
// the same client message id, so a retry is never stored twice. Subscriptions
// deliver each room's messages exactly once and in seq order: a gap in the live
// stream (PUB/SUB dropped at the high-water mark, late join, reconnect) is filled from
// history before anything after it is delivered.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include "switchboard/client/link_health.hpp"
#include "switchboard/common/error.hpp"
#include "switchboard/common/room_sequencer.hpp"
#include "switchboard/transport/curve.hpp"
#include "switchboard/transport/limits.hpp"
#include "switchboard/transport/messages.hpp"

namespace switchboard::client {

using transport::RoomMessage;
using Millis = std::chrono::milliseconds;

struct ClientOptions {
  /// The node's client endpoint (tcp://host:port, or an inproc endpoint with `context`).
  /// Over tcp a Client holds four ZeroMQ sockets of its context: its DEALER, its SUB once
  /// it follows a room, and the two ends of the monitor that tells why the node does not
  /// answer (LinkHealth); mind ZMQ_MAX_SOCKETS (1023) when many share one context.
  std::string endpoint = "tcp://127.0.0.1:7400";
  /// Several nodes of one topology (tcp endpoints), in the order to try them; empty:
  /// `endpoint` alone. The client uses one at a time, from the first. When a request's
  /// attempt goes unanswered (attempt_timeout), or nothing listens there, it moves to
  /// the next (after the last, the first again): every request in flight is sent there
  /// again with its id and client message id (a publish the old node stored is answered
  /// as the duplicate it is, docs/PROTOCOL.md 4.1), and every subscription goes on from
  /// its last delivered seq, what it missed read back from history: nothing lost,
  /// nothing twice. Any node answers for every room (it forwards to the room's shard).
  std::vector<std::string> endpoints;
  /// CURVE with several nodes: each node's public key, by endpoint (a node not named
  /// here is taken to have curve->server_public). The client's own keypair must be one
  /// every node admits (`[security] client_keys`, docs/SECURITY.md).
  std::map<std::string, std::string> node_keys;
  /// For inproc endpoints: the node's context (actors::Node::context()).
  zmq::context_t* context = nullptr;
  /// CURVE on tcp (none: plain, for a node run with CURVE off): the node's public key
  /// and this client's keypair, which the node must admit (docs/SECURITY.md). A node
  /// that does not admit it never answers: requests time out. load_local_keys reads a
  /// node's own keys directory.
  std::optional<transport::CurveClient> curve;
  /// One attempt waits this long for its reply before the request is sent again.
  Millis attempt_timeout{1000};
  /// Attempts per request before it fails with errc::timeout.
  int max_attempts = 10;
  /// false: a request fails (unavailable) after its first attempt when nothing ever
  /// accepted a connection at the endpoint (refused), instead of waiting out every
  /// attempt for a node that may be starting. The CLI's commands set it.
  bool wait_for_node = true;
  /// Most messages in flight at once (publishes, and any other request as one);
  /// publish_async waits for room beyond it.
  std::size_t max_in_flight = 1024;
  /// Most publishes publish_async gathers into one publish_batch frame (docs/PROTOCOL.md
  /// section 4.7); 1: never gathered.
  std::size_t max_batch = 1000;
  /// publish_async sends at once while fewer than this many publish frames are in
  /// flight; past it, what it is given waits and goes in one frame as soon as a frame
  /// is answered (no timer: a publish alone is never held back).
  std::size_t publish_frames_in_flight = 2;
  /// Receive high-water mark of the SUB socket (messages). Drops are repaired.
  int sub_rcvhwm = 10'000;
  /// Messages asked per history page when a subscription repairs a gap or catches up.
  std::uint32_t repair_page = 1000;
  /// A subscribed room gets its last seq asked once this long after the subscribe, this
  /// long after a failed repair request, and, while no heads event has named it
  /// (docs/PROTOCOL.md section 5.2; a node from before heads), once it has been quiet
  /// this long after a message: what finds messages dropped at the end of a burst.
  Millis idle_check{250};
  /// Every request made for this user (`as`, docs/PROTOCOL.md section 3): the node
  /// applies that user's room roles and hides private rooms they are not in. None: the
  /// client acts for itself, a service with its key's grant.
  std::optional<std::string> as;
};

/// The keys a client on the node's machine uses: DIR/node.key.pub (the node's public
/// key) and DIR/client.key (the local client's keypair, which the node admits); DIR is
/// the node's DATA/keys. Errors: unavailable, bad_field (transport::load_curve_*).
Result<transport::CurveClient> load_local_keys(const std::filesystem::path& dir);

/// Sets `socket` up as a CURVE client with `options.curve` if it has one and `endpoint`
/// is not inproc, then connects it.
void connect_socket(zmq::socket_t& socket, const ClientOptions& options, const std::string& endpoint);

struct HistoryQuery {
  std::uint32_t limit = 0;                   ///< 0: the node's default page
  std::optional<std::uint64_t> before, after;  ///< at most one
  std::uint64_t thread = 0;  ///< set: only the thread with this root, the root first (docs/PROTOCOL.md 4.7.3)
};

/// What a subscription did, per client.
struct SubscriptionStats {
  std::uint64_t live = 0;      ///< delivered straight from PUB
  std::uint64_t repaired = 0;  ///< delivered from history to fill a gap
  std::uint64_t dropped_duplicates = 0;
  std::uint64_t heads = 0;       ///< heads events taken (docs/PROTOCOL.md section 5.2)
  std::uint64_t heads_gaps = 0;  ///< heads events missed (every room's last seq then asked)
  std::uint64_t checks = 0;      ///< last_seq requests the subscriptions made
  std::uint64_t fetches = 0;     ///< history requests the subscriptions made
};

class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // ---- rooms (each true if it changed something) ----
  /// `user` becomes its owner; a private room is invisible to non-members.
  Result<bool> create_room(const std::string& room, const std::string& user, bool private_room = false);
  Result<bool> join(const std::string& room, const std::string& user);
  Result<bool> leave(const std::string& room, const std::string& user);
  /// All rooms, or the rooms `user` is a member of. With several nodes, `missing`
  /// names the nodes that could not be asked (down, or not reachable yet): their rooms
  /// are not in the list. For a user, `summaries` says per room what is new for them.
  Result<transport::RoomsOk> rooms(const std::optional<std::string>& user = std::nullopt);
  /// `user`'s rooms, newest activity first, each with its newest message (seq, time,
  /// sender, the start of its body), the user's read marker, unread count and role;
  /// `missing` as for rooms().
  Result<transport::RoomsOk> rooms_summary(const std::string& user) { return rooms(user); }
  /// Whether `room`'s members see each other's read markers (an owner's choice, `as`;
  /// off until set). Returns whether it changed.
  Result<bool> set_receipts(const std::string& room, bool receipts);
  /// Which of `room`'s messages notify `user` while offline (docs/PROTOCOL.md 4.9.3):
  /// the level as set and the one that applies.
  Result<transport::SetNotifyOk> set_notify(const std::string& room, const std::string& user,
                                            transport::NotifyLevel level);
  /// The read markers of `room`'s members, by name, where an owner made them public.
  /// Errors: no_such_room, not_member, forbidden (they are private).
  Result<transport::ReadMarkersOk> read_markers(const std::string& room);
  /// `room`'s retention (docs/PROTOCOL.md 4.13): sets the fields given (an owner's, a
  /// legal hold an operator's), reads it with none. Errors: no_such_room, forbidden,
  /// bad_field (over the node's cap, or absurd).
  Result<transport::SetRetentionOk> set_retention(transport::SetRetention request);
  /// Removes `room`'s messages below seq `before`, at most 1000 per call: returns the
  /// room's first seq now (call again until it is `before`). Errors: as set_retention,
  /// and forbidden under a legal hold.
  Result<std::uint64_t> trim_history(const std::string& room, std::uint64_t before);
  /// Stores messages as they were elsewhere (docs/PROTOCOL.md 4.14): an operator's.
  Result<transport::ImportBatchOk> import_batch(transport::ImportBatch batch);
  using ImportDone = std::function<void(const Result<transport::ImportBatchOk>&)>;
  /// import_batch without waiting, pipelined like mark_read_async (batches of one room
  /// are stored in the order they were sent).
  void import_batch_async(transport::ImportBatch batch, ImportDone done);
  /// A page of them: at most `limit`, after `after` (the last summary of the page
  /// before; none: from the newest); `more` says whether another page follows.
  Result<transport::RoomsOk> rooms_summary(const std::string& user, std::uint32_t limit,
                                           std::optional<transport::SummaryCursor> after = std::nullopt);
  /// Moves `user`'s read marker in `room` forward to `seq` (at most the room's last
  /// seq; a marker never moves back). Publishing moves the sender's marker to their
  /// message as well. Errors: no_such_room, not_member, bad_field (past the last seq),
  /// forbidden (for another user than ClientOptions::as).
  Result<transport::MarkReadOk> mark_read(const std::string& room, const std::string& user, std::uint64_t seq);
  using MarkReadDone = std::function<void(const Result<transport::MarkReadOk>&)>;
  /// mark_read without waiting (pipelined like publish_async, and stored in the node's
  /// group commits with whatever else is in flight); `done` runs from a later call on
  /// this client. Blocks while max_in_flight requests are outstanding.
  void mark_read_async(const std::string& room, const std::string& user, std::uint64_t seq, MarkReadDone done);
  /// Every chat shard, its primary and replicas, and how far each replica is behind.
  Result<transport::ShardsOk> shards();
  /// Called as a backup arrives: bytes received, and the store's size when it began
  /// (at least the backup's).
  using BackupProgress = std::function<void(std::uint64_t received, std::uint64_t estimate)>;
  /// A hot backup of the node's store (docs/PROTOCOL.md 4.12) into `dir` (made if
  /// missing; it must be empty) as `dir`/data.mdb: a compacted copy, consistent as of
  /// the moment it began, made while the node goes on; `switchboard run --data dir`
  /// opens it. Eight 1 MiB chunks are asked for at a time, written as data.mdb.partial
  /// (O_DIRECT where the file system allows), fsynced, then renamed. A backup the node
  /// stopped (its store's map grew meanwhile) is begun again, up to three times.
  /// Returns the bytes written. Needs a client with every right (not a grant's key, no
  /// `as`). Errors: bad_field (`dir` not empty), unavailable (the node's copy, or
  /// writing `dir`), forbidden, timeout.
  Result<std::uint64_t> backup(const std::filesystem::path& dir, const BackupProgress& progress = {});
  Result<std::vector<std::string>> members(const std::string& room);
  /// The members and their roles.
  Result<transport::MembersOk> members_with_roles(const std::string& room);
  // Management, by an owner (ClientOptions::as) or a service acting for the node.
  Result<bool> add_member(const std::string& room, const std::string& user, Role role = Role::member);
  Result<bool> remove_member(const std::string& room, const std::string& user);
  /// Bans `user` from the room (ends their membership; no join or add_member of theirs
  /// until an unban). false: banned already. Errors as remove_member's.
  Result<bool> ban(const std::string& room, const std::string& user);
  /// Lifts a ban (the user stays a non-member). false: not banned.
  Result<bool> unban(const std::string& room, const std::string& user);
  /// Kicks `user` from the room: removed as remove_member does, and their following of
  /// it on every node's bridge ends. false: they were not a member.
  Result<bool> kick(const std::string& room, const std::string& user);
  /// Closes every WebSocket connection of `user` on every node (an operator's: without
  /// ClientOptions::as).
  Result<void> disconnect(const std::string& user);
  Result<bool> set_role(const std::string& room, const std::string& user, Role role);
  /// Deletes the room, its members and its history.
  Result<bool> delete_room(const std::string& room);
  /// The last durable seq of the room (0: no message yet).
  Result<std::uint64_t> last_seq(const std::string& room);
  Result<transport::HelloOk> hello();
  /// The node this client uses now (ClientOptions::endpoints), and how many times it
  /// moved to another one.
  const std::string& endpoint() const noexcept { return options_.endpoint; }
  std::uint64_t moves() const noexcept { return moves_; }

  // ---- services ----
  /// Calls service `service` (named in the topology) as `user` and returns the body of
  /// its answer. Errors: no_such_service, unavailable (the service is not connected or
  /// did not answer within its timeout), timeout, and whatever the service answers.
  /// Like every request, a call is sent again after an attempt timeout: a service sees
  /// a call more than once if its answer was slower than that.
  Result<std::string> call_service(const std::string& service, const std::string& user, const std::string& body);

  // ---- publishing ----
  /// Publishes and waits for the ack. An empty client_msg_id gets a fresh unique one.
  Result<transport::PublishOk> publish(const std::string& room, const std::string& user,
                                       const std::string& body, std::string client_msg_id = {});
  /// A publish with any of its fields (`mentions`, ...): `message.client_msg_id` empty
  /// gets a fresh unique one.
  Result<transport::PublishOk> publish(transport::Publish message);
  using PublishDone = std::function<void(const Result<transport::PublishOk>&)>;
  /// Sends a publish without waiting (pipelining); `done` runs from a later call on
  /// this client (wait_all, publish, next, ...) with the ack or the final error.
  /// Blocks while max_in_flight messages are outstanding. Publishes given while others
  /// are in flight are gathered into publish_batch frames (ClientOptions::max_batch),
  /// each keeping its own cmid, seq and ack.
  void publish_async(const std::string& room, const std::string& user, const std::string& body,
                     PublishDone done, std::string client_msg_id = {});
  /// The same with any of a publish's fields (`mentions`, `reply_to`, `thread`, ...). An
  /// edit, delete or react, and a message that names a thread or a message it answers,
  /// goes in a frame of its own, in order with the publishes around it.
  void publish_async(transport::Publish message, PublishDone done);

  // ---- a message's life (docs/PROTOCOL.md 4.7.2) ----
  /// Each is a room entry of its own (its seq in the ack), idempotent by cmid like a
  /// publish. Errors besides a publish's: no_such_message, message_deleted, forbidden (not
  /// the author; a delete: nor an owner), too_late (past [limits] edit_window_s or
  /// delete_window_s), no_change (a react as it stands already), limit_reached (a react
  /// with a new key past max_reaction_keys).
  /// Replaces the body of message `target` (the author's, within the edit window).
  Result<transport::PublishOk> edit(const std::string& room, const std::string& user, std::uint64_t target,
                                    const std::string& body);
  /// Deletes message `target` (the author's, or any by a room owner): its body, and its
  /// edits' bodies, are erased from the store before the ack.
  Result<transport::PublishOk> remove(const std::string& room, const std::string& user, std::uint64_t target);
  /// Adds (`on`) or takes back `user`'s reaction `key` (1 to 32 bytes) to message `target`.
  Result<transport::PublishOk> react(const std::string& room, const std::string& user, std::uint64_t target,
                                     const std::string& key, bool on = true);
  /// Processes replies until nothing is in flight. False if `timeout` passed first.
  bool wait_all(Millis timeout = Millis(60'000));
  /// Messages given and not yet answered (sent or waiting to be gathered).
  std::size_t in_flight() const noexcept { return messages_in_flight_; }

  // ---- history ----
  /// A page of `room`'s history, each message with fields of its own.
  Result<transport::HistoryOk> history(const std::string& room, const HistoryQuery& query = {});
  /// The same page read in place: the reply's bytes are held once and each message's
  /// fields view them (MessageView::to_message() copies one out). Cheaper than history()
  /// by a string per field; the views live as long as the page (or a copy of it).
  Result<transport::HistoryPage> history_page(const std::string& room, const HistoryQuery& query = {});
  /// Reads `room`'s messages with seq > `after`, oldest first, a page of up to `page`
  /// messages at a time, to the room's end as it stands when each page is read. Pages
  /// are asked ahead: seqs are gapless, so while `each` runs on one page the next two
  /// are on their way (a page the node cut short, at its byte limit, is asked again from
  /// where it ended). Pages are read in place, as history_page() reads them; `each` may
  /// keep a page (the views stay valid while it does). It returns false to stop.
  /// Returns the seq of the last message handed to `each` (`after` if none).
  /// Errors: those of history (no_such_room, ...).
  using PageReader = std::function<bool(const transport::HistoryPage& page)>;
  Result<std::uint64_t> read_history(const std::string& room, std::uint64_t after, const PageReader& each,
                                     std::uint32_t page = 1000);

  // ---- subscriptions ----
  /// Follows `room`: next() delivers its messages with seq > after_seq, in order;
  /// with no after_seq, those published from now on.
  Result<void> subscribe(const std::string& room, std::optional<std::uint64_t> after_seq = std::nullopt);
  void unsubscribe(const std::string& room);
  /// The next message of any subscribed room (each room in seq order, nothing
  /// skipped but what the room no longer holds, nothing twice), or nullopt if none came
  /// within `timeout`. A subscription that asked for messages its room's retention has
  /// trimmed goes on from the room's first seq: take_truncations() says so.
  /// Errors: whatever a gap repair's history request fails with (the repair is tried
  /// again after idle_check).
  Result<std::optional<RoomMessage>> next(Millis timeout);

  // ---- read state of a user's other devices ----
  /// Follows `user`'s read markers: each time one moves (a mark_read from any of the
  /// user's connections, on any node, this client's included), next_read() gives it, so
  /// a device learns what another one read. Events while nobody follows them are not
  /// kept: read the markers with rooms_summary() after following.
  Result<void> follow_reads(const std::string& user);
  void unfollow_reads(const std::string& user);
  /// The next read event of a followed user, or nullopt if none came within `timeout`.
  /// Room messages that arrive meanwhile wait for next().
  std::optional<transport::ReadEvent> next_read(Millis timeout);
  SubscriptionStats subscription_stats() const noexcept;
  /// Where subscriptions skipped messages their room no longer holds (trimmed by its
  /// retention): each room and the first seq it holds, in the order they were found,
  /// once each. Messages from that seq on come through next().
  struct Truncation {
    std::string room;
    std::uint64_t first_seq = 0;
    friend bool operator==(const Truncation&, const Truncation&) = default;
  };
  std::vector<Truncation> take_truncations() { return std::exchange(truncations_, {}); }

  /// A fresh client message id (random, 32 hex characters).
  static std::string new_client_msg_id();

 private:
  using ReplyDone = std::function<void(Result<transport::Reply>)>;
  using PageDone = std::function<void(Result<transport::HistoryPage>)>;
  struct Pending {
    std::string frame;
    int attempts = 1;
    std::chrono::steady_clock::time_point deadline;
    ReplyDone done;
    PageDone page_done;  ///< set instead of done: a history request whose page is read in place
    std::size_t messages = 1;  ///< publishes it carries (a publish_batch: its items)
    bool publishes = false;    ///< a publish or publish_batch frame
  };
  /// Publishes given to publish_async and not sent yet: a run of one room and user,
  /// which goes as one frame (at most max_batch items and a frame's bytes).
  struct Run {
    std::string room, user;
    std::vector<transport::PublishItem> items;
    std::vector<PublishDone> dones;
    std::size_t bytes = 0;
    std::optional<transport::Publish> entry = std::nullopt;  ///< an edit, delete or react: alone
  };
  using Sequencer = RoomSequencer<RoomMessage>;
  static constexpr FollowerId kSelf = 1;  ///< the one follower of the client's sequencer

  std::uint64_t send_request(transport::RequestBody body, ReplyDone done, std::size_t messages = 1,
                             bool publishes = false);
  /// Sends a history request whose page is read in place.
  void send_history(transport::History request, PageDone done);
  /// Sends what publish_async gathered, in frames of one room and user each, while
  /// fewer than publish_frames_in_flight publish frames are out.
  void send_unsent();
  /// Waits for replies (and, with `sub`, live messages) until `until`. Returns when
  /// anything was processed or the time passed.
  void pump(std::chrono::steady_clock::time_point until, bool sub = false);
  /// Sends a request and waits for its reply.
  Result<transport::ReplyBody> call(transport::RequestBody body);
  void on_reply(std::string_view frame);
  void resend_expired();
  void forget(std::unordered_map<std::uint64_t, Pending>::iterator it);
  /// Answers a request that gets no reply with `error` (page_done or done, whichever it has).
  static void fail(Pending& p, Error error);
  /// Reads the connection's monitor events; fails every request if the link is broken.
  void watch_link();
  Result<void> connect_sub();
  /// (Re)makes the DEALER (and its monitor) to options_.endpoint.
  void open_req();
  /// Connects `socket` to `endpoint` of the node in use, with that node's public key.
  void connect_to_node(zmq::socket_t& socket, const std::string& endpoint);
  /// The node in use stopped answering: the next one of ClientOptions::endpoints, with
  /// every request in flight sent again there and the subscriptions moved (resubscribe()).
  void move_on();
  /// After move_on(), from next()/next_read(): the SUB to the new node's publish
  /// endpoint, following what was followed, and every room's last seq asked there.
  Result<void> resubscribe();
  /// Takes what the SUB socket holds (room messages, heads events).
  void take_published(std::vector<zmq::message_t>& parts);
  /// Hands over the sequencer's deliveries and sends the requests it asks for.
  void carry_out(Sequencer::Actions& actions);

  ClientOptions options_;
  std::unique_ptr<zmq::context_t> own_context_;
  zmq::context_t* context_;
  zmq::socket_t req_;
  /// The monitor of req_ on tcp (setup mistakes show there, not in replies).
  std::optional<zmq::socket_t> req_monitor_;
  LinkHealth link_;
  std::optional<zmq::socket_t> sub_;
  transport::Limits reply_limits_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, Pending> pending_;
  std::deque<Run> unsent_;
  std::size_t messages_in_flight_ = 0;  ///< in pending_ and unsent_
  std::size_t publish_frames_ = 0;      ///< publish frames in pending_
  bool batches_refused_ = false;        ///< the node answered publish_batch unknown_op: single frames only
  std::set<std::uint64_t> batch_frames_;  ///< ids of publish_batch frames in pending_
  /// A publish_batch the node does not know (unknown_op): its items go again as single
  /// publishes, and the frame is answered from theirs. False if `reply` is not that.
  bool resend_as_singles(std::uint64_t id, const transport::Reply& reply);
  Sequencer sequencer_;
  std::deque<RoomMessage> ready_;
  std::vector<Truncation> truncations_;  ///< not taken yet (take_truncations)
  std::deque<transport::ReadEvent> reads_ready_;  ///< read events of followed users, not taken yet
  std::set<std::string> read_users_;              ///< users whose read events are followed
  std::optional<Error> repair_error_;  ///< a repair's request failed: next() says so once
  std::vector<std::string> nodes_;     ///< ClientOptions::endpoints, or `endpoint` alone
  std::size_t node_ = 0;               ///< the one in use
  std::uint64_t moves_ = 0;
  std::set<std::string> followed_;     ///< rooms subscribed (to follow again after a move)
  bool sub_moved_ = false;             ///< the SUB is to be made again on the node in use
};

}  // namespace switchboard::client
