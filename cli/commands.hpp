// The `switchboard` command's subcommands. Each returns the process exit status:
// 0 success, 1 failure (message on stderr); usage errors (2) are CLI11's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "switchboard/common/error.hpp"
#include "switchboard/common/message_map.hpp"

namespace switchboard::client {
struct ClientOptions;
class Client;
}  // namespace switchboard::client
namespace switchboard::transport {
struct RoomMessage;
}  // namespace switchboard::transport

namespace switchboard::cli {

struct RunArgs {
  std::string data = "data";
  std::string listen = "tcp://127.0.0.1:7400";
  std::string publish;  ///< empty: the listen endpoint's port + 1 ("*" stays "*")
  std::string presence;      ///< empty: the listen endpoint's port + 2
  std::string presence_pub;  ///< empty: the listen endpoint's port + 3
  std::uint64_t heartbeat_ms = 5000;
  std::uint64_t session_ttl_ms = 15000;
  std::string durability = "sync";
  std::string name = "embedded";
  std::uint64_t max_store_mb = 64 * 1024;  ///< the history store never grows past this
  std::string config;  ///< a topology file: endpoints, data and limits come from it
  std::string node;    ///< with config: which of its nodes this process is
  /// The WebSocket bridge's HOST:PORT, or "off". Empty: the topology node's `bridge`
  /// key, or with no file the listen host and port + 10 (7410; "*" stays "*").
  std::string bridge;
  std::string web;  ///< static files the bridge serves (the web chat page)
  std::size_t bridge_max_queue = 4096;  ///< frames queued per connection
  std::uint64_t bridge_handshake_ms = 10'000;
  std::uint64_t bridge_idle_ms = 60'000;
  std::string token_key;  ///< public key file: the bridge requires tokens signed by it
  std::string bridge_cert, bridge_key;  ///< TLS for the bridge (PEM files); default: the topology's
  std::vector<std::string> bridge_origins;  ///< origins that may open the bridge; default: the topology's
  std::string store_key;  ///< key file: message bodies encrypted at rest; default: the topology's
  std::vector<std::string> limits;  ///< KEY=INTEGER: keys of the topology's [limits]
  /// The metrics endpoint's HOST:PORT, or "off". Empty: the topology node's `metrics`
  /// key, or with no file the listen host and port + 20 (7420; "*" stays "*").
  std::string metrics;
  /// The HTTP API's HOST:PORT, or "off". Empty: the topology node's `api` key, or with
  /// no file the listen host and port + 30 (7430; "*" stays "*"). docs/API.md.
  std::string api;
  bool curve = true;  ///< false (--curve off): plain tcp, whatever the topology says
};
int run(const RunArgs& args);

struct ClientArgs {
  std::string connect = "tcp://127.0.0.1:7400";  ///< one endpoint, or several comma-separated
  std::vector<std::string> node_keys;  ///< --node-key ENDPOINT=KEY
  /// The node's keys directory (DATA/keys): its public key and the local client's
  /// keypair (client::load_local_keys).
  std::string keys = "data/keys";
  bool curve = true;  ///< false (--curve off): plain tcp, to a node run with CURVE off
  std::string room;
  std::string user;
  bool json = false;
  std::string as;  ///< --as: the user whose room rights apply ("": the local client's own)
};
/// edit (text: the new body), delete, or react (text: the key; `on` false takes it back)
/// message `target` of args.room as args.user; prints the entry's seq.
int change(const ClientArgs& args, EntryKind kind, std::uint64_t target, const std::string& text, bool on);
/// Posts `text` to args.room as args.user (creating and joining the room if need be),
/// answering message `reply_to` and in the thread of root `thread` when set (4.7.3).
int post(const ClientArgs& args, const std::string& text, const std::string& client_msg_id,
         const std::vector<std::string>& mentions = {}, std::uint64_t reply_to = 0, std::uint64_t thread = 0);
int tail(const ClientArgs& args, std::optional<std::uint64_t> from, std::optional<std::uint64_t> count);
/// A page of args.room's history (of one thread, with `thread`: its root first).
int history(const ClientArgs& args, std::uint32_t limit, std::optional<std::uint64_t> before,
            std::optional<std::uint64_t> after, std::uint64_t thread = 0);
/// `switchboard chat` (cli/chat.cpp): args.user in args.room, interactive on a terminal
/// (a line editor; others' typing shown, one's own shown; reconnects when the node goes
/// away), line by line from a pipe. Ends on end of input once what was typed is sent, or
/// on SIGINT/SIGTERM (0); 1 if the first connection fails or lines could not be sent.
int chat(const ClientArgs& args);
int who(const ClientArgs& args);
/// `status --user U`: online with a status, or offline and when last seen (if known).
int status(const ClientArgs& args);
/// Room management: `action` is create (args.user its owner; `private_room`), add,
/// remove, role (`role`), delete or members; prints what changed, or the members.
int room(const ClientArgs& args, const std::string& action, const std::string& role, bool private_room);
/// Calls service `service` with `body` as args.user and prints its answer.
int call(const ClientArgs& args, const std::string& service, const std::string& body);
/// `switchboard shards`: each chat shard, its primary and replicas, and each replica's lag.
int shards(const ClientArgs& args);
/// `switchboard export --room R [--after SEQ]`: the room's messages after SEQ as JSON
/// lines on stdout, oldest first.
int export_room(const ClientArgs& args, std::uint64_t after);
/// `switchboard retention --room R`: the room's retention, after setting what is given.
struct RetentionArgs {
  std::optional<std::uint64_t> max_age_s, max_messages;
  std::string legal_hold;  ///< "on", "off", or "" (unchanged)
};
int retention(const ClientArgs& args, const RetentionArgs& set);
/// `switchboard trim --room R --before SEQ`: removes the room's messages below SEQ.
int trim(const ClientArgs& args, std::uint64_t before);
/// `switchboard import --room R < FILE`: an export's lines into the room (empty, or
/// holding the first part of the same export), `batch` messages per request.
int import_room(const ClientArgs& args, std::size_t batch);
/// `switchboard backup --out DIR`: the node's store into DIR/data.mdb, with progress.
int backup(const ClientArgs& args, const std::string& out);
/// `switchboard unread`: args.user's rooms, newest activity first, each with its unread
/// count and newest message; `mark` (ROOM=SEQ) moves the user's marker first.
int unread(const ClientArgs& args, const std::vector<std::string>& mark);
int check_config(const std::string& file);
/// Writes a new key of `kind` ("tokens", "curve", "store") to `out` (and, but for
/// store, its public half to out.pub); for curve, prints the public key. An existing
/// file is refused (exit 1, naming it) unless `force`; a store key never is replaced.
int keygen(const std::string& kind, const std::string& out, bool force);
struct TokenArgs {
  std::string user, key;
  std::uint64_t ttl_s = 3600;
  std::vector<std::string> rooms;
};
/// Prints a token for args.user signed with the key in args.key.
int token(const TokenArgs& args);
/// Which shard and node own `room`, in `config` (empty: the embedded default).
int where(const std::string& room, const std::string& config);
/// Scrapes the metrics endpoint at `address` (HOST:PORT) of a running node and prints
/// its figures as a table, or with `json` as one JSON object (docs/METRICS.md).
int stats(const std::string& address, bool json);

// ---- shared by the client commands (commands.cpp, chat.cpp) ----
/// The connection options of `args`: --connect, --keys (or --curve off), --as. Errors:
/// those of client::load_local_keys, with what --keys and --curve are for.
Result<client::ClientOptions> client_options(const ClientArgs& args);
/// Creates args.room if needed (args.user its owner) and makes args.user a member.
Result<void> enter(client::Client& c, const ClientArgs& args);
/// A room message as the commands print it: "[ROOM #SEQ] USER: BODY".
std::string message_line(const transport::RoomMessage& m);
/// Says on stderr that `what` failed and why ("switchboard: WHAT: CODE: MESSAGE");
/// returns 1, the exit status.
int fail(const std::string& what, const Error& error);

}  // namespace switchboard::cli
