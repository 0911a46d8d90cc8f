// switchboard: run a node, or talk to one.
#include <CLI/CLI.hpp>

#include "switchboard/actors/metrics_server.hpp"
#include "switchboard/cli/commands.hpp"

int main(int argc, char** argv) {
  using namespace switchboard::cli;
  using switchboard::EntryKind;
  CLI::App app{"Switchboard: a ZeroMQ message router for chat, with durable ordered history."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Help for every subcommand");

  RunArgs run_args;
  auto* run_cmd = app.add_subcommand("run", "Run a node in the foreground (Ctrl-C stops it cleanly).");
  std::vector<CLI::Option*> node_flags;
  node_flags.push_back(run_cmd->add_option("--data", run_args.data, "Directory of the history store")->capture_default_str());
  node_flags.push_back(run_cmd->add_option("--listen", run_args.listen, "Client endpoint (ROUTER); a tcp port may be *")
      ->capture_default_str());
  node_flags.push_back(
      run_cmd->add_option("--publish", run_args.publish, "Publish endpoint (PUB); default: listen port + 1"));
  node_flags.push_back(run_cmd->add_option("--durability", run_args.durability,
                      "sync: an ack means fsynced (survives power loss); nosync: survives a process crash")
      ->check(CLI::IsMember({"sync", "nosync"}))
      ->capture_default_str());
  node_flags.push_back(run_cmd->add_option("--name", run_args.name, "Node name")->capture_default_str());
  auto* config_opt = run_cmd->add_option("--config", run_args.config, "Topology file (TOML); see docs/TOPOLOGY.md")
                         ->check(CLI::ExistingFile);
  run_cmd->add_option("--node", run_args.node, "With --config: which node of the file this process is")
      ->needs(config_opt);
  config_opt->needs("--node");
  node_flags.push_back(
      run_cmd->add_option("--presence", run_args.presence, "Presence endpoint (ROUTER); default: listen port + 2"));
  node_flags.push_back(run_cmd->add_option("--presence-pub", run_args.presence_pub,
                                           "Presence events endpoint (PUB); default: listen port + 3"));
  node_flags.push_back(
      run_cmd->add_option("--heartbeat-ms", run_args.heartbeat_ms, "Interval at which presence sessions heartbeat")
          ->check(CLI::Range(std::uint64_t{10}, std::uint64_t{3'600'000}))
          ->capture_default_str());
  node_flags.push_back(run_cmd->add_option("--session-ttl-ms", run_args.session_ttl_ms,
                                           "A presence session not heard from for this long is offline")
                           ->check(CLI::Range(std::uint64_t{20}, std::uint64_t{86'400'000}))
                           ->capture_default_str());
  node_flags.push_back(run_cmd->add_option("--max-store-mb", run_args.max_store_mb,
                      "Largest size of the history store, in MiB; past it publishes get storage_full")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 30))
      ->capture_default_str());
  run_cmd->add_option("--bridge", run_args.bridge,
                      "WebSocket bridge HOST:PORT, or off; default: the listen host and port + 10 (7410)");
  run_cmd->add_option("--web", run_args.web, "Directory of static files the bridge serves (examples/web)");
  run_cmd->add_option("--bridge-max-queue", run_args.bridge_max_queue,
                      "Frames queued per WebSocket connection before it is closed as too slow")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
      ->capture_default_str();
  run_cmd->add_option("--bridge-handshake-ms", run_args.bridge_handshake_ms,
                      "Time a WebSocket client has to upgrade, and then to authenticate")
      ->check(CLI::Range(std::uint64_t{50}, std::uint64_t{3'600'000}))
      ->capture_default_str();
  run_cmd->add_option("--token-key", run_args.token_key,
                      "Public key file (switchboard keygen --for tokens: FILE.pub); with it, WebSocket clients "
                      "authenticate with signed tokens only")
      ->check(CLI::ExistingFile);
  auto* cert = run_cmd->add_option("--bridge-cert", run_args.bridge_cert,
                                   "TLS certificate chain (PEM) for the bridge: it then serves wss:// and https:// "
                                   "only; needs --bridge-key");
  auto* key = run_cmd->add_option("--bridge-key", run_args.bridge_key, "The TLS certificate's private key (PEM)");
  cert->needs(key);
  key->needs(cert);
  run_cmd->add_option("--bridge-origin", run_args.bridge_origins,
                      "An origin (https://chat.example.com) whose pages may open the bridge beside the bridge's own "
                      "page, or * for any; may be given again");
  node_flags.push_back(run_cmd->add_option("--limit", run_args.limits,
                                           "KEY=INTEGER, a key of a topology's [limits] (docs/TOPOLOGY.md), e.g. "
                                           "publish_per_s=50; may be given again"));
  run_cmd->add_option("--store-key", run_args.store_key,
                      "Key file (switchboard keygen --for store) that encrypts message bodies at rest; a store "
                      "is encrypted from its first message on");
  run_cmd->add_option("--bridge-idle-ms", run_args.bridge_idle_ms,
                      "A WebSocket connection silent this long is closed (pinged at half of it)")
      ->check(CLI::Range(std::uint64_t{100}, std::uint64_t{86'400'000}))
      ->capture_default_str();
  run_cmd->add_option("--metrics", run_args.metrics,
                      "Metrics endpoint HOST:PORT (GET /metrics, Prometheus text), or off; default: the listen host "
                      "and port + 20 (7420)");
  run_cmd->add_option("--api", run_args.api,
                      "HTTP API HOST:PORT (POST /api/v1/OP with a bearer key, docs/API.md), or off; default: the "
                      "listen host and port + 30 (7430) without --config, the node's api key with it");
  run_cmd->add_option("--curve", run_args.curve,
                      "CURVE on every tcp endpoint (on, the default; keys in DATA/keys); off: plain tcp, for a "
                      "tunnel in front or a benchmark")
      ->transform(CLI::IsMember(std::map<std::string, bool>{{"on", true}, {"off", false}}))
      ->default_str("on");
  for (auto* flag : node_flags) config_opt->excludes(flag);  // the file says all of that


  ClientArgs c;
  auto add_keys = [&](CLI::App* cmd) {
    cmd->add_option("--keys", c.keys, "The node's keys directory (DATA/keys): its public key and this machine's "
                                      "client key")
        ->capture_default_str();
    cmd->add_option("--curve", c.curve, "off: plain tcp, to a node run with --curve off")
        ->transform(CLI::IsMember(std::map<std::string, bool>{{"on", true}, {"off", false}}))
        ->default_str("on");
  };
  // A command that talks to a node: where it is, and the keys to reach it with.
  auto add_node = [&](CLI::App* cmd) {
    add_keys(cmd);
    cmd->add_option("--connect", c.connect,
                    "Node's client endpoint; several nodes of one topology, comma-separated: the next one is used "
                    "when the one in use stops answering")
        ->capture_default_str();
    cmd->add_option("--node-key", c.node_keys,
                    "ENDPOINT=KEY: with CURVE and several --connect nodes, that node's public key (Z85); a node not "
                    "named has the --keys directory's; again for each");
  };
  auto add_common = [&](CLI::App* cmd, bool user_required) {
    add_node(cmd);
    cmd->add_option("--room", c.room, "Room name")->required();
    auto* user = cmd->add_option("--user", c.user, "User name");
    if (user_required) user->required();
  };

  std::string text, cmid;
  auto* post_cmd = app.add_subcommand("post", "Post a message (creating the room and joining it if needed); "
                                              "prints the assigned seq.");
  add_common(post_cmd, true);
  post_cmd->add_option("text", text, "Message text")->required();
  post_cmd->add_option("--cmid", cmid, "Client message id (idempotency key); default: a fresh one");
  std::vector<std::string> mentions;
  post_cmd->add_option("--mention", mentions, "A user the message mentions (a member of the room); again for each");
  std::uint64_t reply_to = 0, thread = 0;
  post_cmd->add_option("--reply-to", reply_to, "The seq of the message this one answers");
  post_cmd->add_option("--thread", thread, "The seq of the root of the thread it goes in");

  // A message's life (docs/PROTOCOL.md 4.7.2): each prints the seq of its entry.
  std::uint64_t target = 0;
  bool off = false;
  auto* edit_cmd = app.add_subcommand("edit", "Replace the text of one of your messages; prints the edit's seq.");
  add_common(edit_cmd, true);
  edit_cmd->add_option("seq", target, "The message's seq")->required();
  edit_cmd->add_option("text", text, "Its new text")->required();
  auto* delete_cmd = app.add_subcommand("delete", "Delete a message (yours, or any as a room owner): its text is "
                                                  "erased; prints the deletion's seq.");
  add_common(delete_cmd, true);
  delete_cmd->add_option("seq", target, "The message's seq")->required();
  auto* react_cmd = app.add_subcommand("react", "React to a message with a key (an emoji, a word; at most 32 bytes); "
                                                "prints the reaction's seq.");
  add_common(react_cmd, true);
  react_cmd->add_option("seq", target, "The message's seq")->required();
  react_cmd->add_option("key", text, "The reaction")->required();
  react_cmd->add_flag("--off", off, "Take the reaction back");

  std::optional<std::uint64_t> from, count;
  auto* tail_cmd = app.add_subcommand("tail", "Follow a room live, in order, with gap repair.");
  add_common(tail_cmd, false);
  tail_cmd->add_option("--from", from, "First seq to print (default: only new messages)");
  tail_cmd->add_option("--count", count, "Exit after printing this many messages");
  tail_cmd->add_flag("--json", c.json, "One JSON object per line");

  std::uint32_t limit = 50;
  std::optional<std::uint64_t> before, after;
  auto* history_cmd = app.add_subcommand("history", "Print a page of a room's history, oldest first.");
  add_common(history_cmd, false);
  history_cmd->add_option("--limit", limit, "Messages in the page")->capture_default_str();
  auto* before_opt = history_cmd->add_option("--before", before, "Only messages with a smaller seq");
  history_cmd->add_option("--after", after, "Only messages with a larger seq")->excludes(before_opt);
  history_cmd->add_option("--thread", thread, "Only the thread with this root (the root first)");
  history_cmd->add_flag("--json", c.json, "One JSON object per line");

  auto* chat_cmd = app.add_subcommand(
      "chat", "Interactive terminal chat in a room, with who comes and goes; /status online|away|busy [TEXT].");
  add_common(chat_cmd, true);

  std::string config_file;
  auto* check_cmd = app.add_subcommand("check-config", "Check a topology file without starting anything.");
  check_cmd->add_option("file", config_file, "Topology file (TOML)")->required();

  std::string where_room, where_config;
  auto* where_cmd = app.add_subcommand("where", "Print which shard and node own a room.");
  where_cmd->add_option("--room", where_room, "Room name")->required();
  where_cmd->add_option("--config", where_config, "Topology file (default: the embedded default)")
      ->check(CLI::ExistingFile);

  auto* who_cmd = app.add_subcommand("who", "List who is online in a room, with their status.");
  add_common(who_cmd, false);
  who_cmd->add_flag("--json", c.json, "One JSON object per line");
  auto* status_cmd = app.add_subcommand("status", "Print whether a user is online (with their status), or when they "
                                                  "were last seen (UTC).");
  add_node(status_cmd);
  status_cmd->add_option("--user", c.user, "User name")->required();
  status_cmd->add_flag("--json", c.json, "One JSON object: user, online, status and text when online, last_seen (ms "
                                        "since the epoch) when known");

  std::string service, call_body;
  auto* call_cmd = app.add_subcommand("call", "Call a service of the topology by name (through any node); prints "
                                              "its answer.");
  add_node(call_cmd);
  call_cmd->add_option("--service", service, "The service's name in the topology")->required();
  call_cmd->add_option("--user", c.user, "User name")->required();
  call_cmd->add_option("body", call_body, "What to send it (its meaning is the service's)")->required();

  auto* shards_cmd = app.add_subcommand("shards", "Print each chat shard, its primary and replicas, and how far each "
                                                  "replica is behind (in log entries).");
  add_node(shards_cmd);
  shards_cmd->add_flag("--json", c.json, "One JSON object per shard");

  std::uint64_t export_after = 0;
  auto* export_cmd = app.add_subcommand("export", "Print a room's messages as JSON lines, oldest first: seq, user, ts "
                                                  "(ms since the epoch), body, cmid, and mentions when a message has "
                                                  "any. A summary goes to stderr.");
  add_node(export_cmd);
  export_cmd->add_option("--room", c.room, "Room name")->required();
  export_cmd->add_option("--after", export_after, "Only messages with a larger seq (default: from the first)");

  std::size_t import_batch = 1000;
  auto* import_cmd = app.add_subcommand("import", "Store an export's JSON lines (stdin) in a room, keeping their seqs, "
                                                  "senders, times and cmids: into a room that holds no message, or "
                                                  "going on with the rest of the same export. A summary goes to stderr.");
  add_node(import_cmd);
  import_cmd->add_option("--room", c.room, "Room name (create it first)")->required();
  import_cmd->add_option("--batch", import_batch, "Messages per request")->capture_default_str()->check(CLI::Range(1, 1000));

  RetentionArgs retention_args;
  auto* retention_cmd = app.add_subcommand("retention", "Print a room's retention, after setting what is given: how "
                                                        "long its messages are kept (--max-age-s), how many "
                                                        "(--max-messages), 0 for the node's default; --legal-hold on|off "
                                                        "(operators only) suspends trimming. --as USER: an owner's.");
  add_node(retention_cmd);
  retention_cmd->add_option("--room", c.room, "Room name")->required();
  retention_cmd->add_option("--max-age-s", retention_args.max_age_s, "Keep messages this many seconds (0: the node's default)")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{100} * 366 * 24 * 3600));
  retention_cmd->add_option("--max-messages", retention_args.max_messages, "Keep at most this many messages (0: the node's default)")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 48));
  retention_cmd->add_option("--legal-hold", retention_args.legal_hold, "on | off")->check(CLI::IsMember({"on", "off"}));
  retention_cmd->add_option("--as", c.as, "Act as this user (an owner); default: the local client, for the node");
  retention_cmd->add_flag("--json", c.json, "One JSON object");

  std::uint64_t trim_before = 0;
  auto* trim_cmd = app.add_subcommand("trim", "Remove a room's messages below a seq (not under a legal hold); "
                                              "history then starts there. --as USER: an owner's.");
  add_node(trim_cmd);
  trim_cmd->add_option("--room", c.room, "Room name")->required();
  trim_cmd->add_option("--before", trim_before, "The seq the room's history starts at afterwards")
      ->required()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 62));
  trim_cmd->add_option("--as", c.as, "Act as this user (an owner); default: the local client, for the node");

  std::string backup_out;
  auto* backup_cmd = app.add_subcommand("backup", "Make a hot backup of a running node's store through the node: a "
                                                  "compacted copy, consistent as of its start, while the node goes on. "
                                                  "`switchboard run --data DIR` opens it.");
  add_node(backup_cmd);
  backup_cmd->add_option("--out", backup_out, "Directory to write data.mdb into (made if missing; must be empty)")
      ->required();

  std::vector<std::string> marks;
  auto* unread_cmd = app.add_subcommand("unread", "Print a user's rooms, newest activity first, each with its unread "
                                                  "count and newest message. --mark ROOM=SEQ: mark the user's messages "
                                                  "read up to SEQ first (repeatable).");
  add_node(unread_cmd);
  unread_cmd->add_option("--user", c.user, "User name")->required();
  unread_cmd->add_option("--mark", marks, "ROOM=SEQ: move the user's read marker in ROOM to SEQ first");
  unread_cmd->add_flag("--json", c.json, "One JSON object per room");

  std::string room_action, room_role;
  bool room_private = false;
  auto* room_cmd = app.add_subcommand("room", "Manage a room: create (--user owns it; --private), add / remove a "
                                              "member (--user; --role), ban / unban / kick a user (--user), role (--user "
                                              "--role), delete, members (with their roles). --as USER: with that user's rights (an owner's).");
  add_node(room_cmd);
  room_cmd->add_option("action", room_action, "create | add | remove | ban | unban | kick | role | delete | members")
      ->required()
      ->check(CLI::IsMember({"create", "add", "remove", "ban", "unban", "kick", "role", "delete", "members"}));
  room_cmd->add_option("--room", c.room, "Room name")->required();
  room_cmd->add_option("--user", c.user, "The member acted on (create: the owner)");
  room_cmd->add_option("--role", room_role, "owner | member | reader");
  room_cmd->add_option("--as", c.as, "Act as this user (their roles apply); default: the local client, for the node");
  room_cmd->add_flag("--private", room_private, "create: a private room, invisible to non-members");

  std::string key_kind = "tokens", key_out;
  bool key_force = false;
  auto* keygen_cmd = app.add_subcommand("keygen", "Write a new key: --for tokens, an Ed25519 key that signs user "
                                                  "tokens (FILE, mode 0600, and FILE.pub); --for curve, a CURVE "
                                                  "keypair for a node, service or client (FILE, mode 0600, and FILE.pub; "
                                                  "prints the public key); --for store, the key that encrypts message "
                                                  "bodies at rest (FILE, mode 0600).");
  keygen_cmd->add_option("--for", key_kind, "What the key is for")
      ->check(CLI::IsMember({"tokens", "curve", "store"}))
      ->capture_default_str();
  keygen_cmd->add_option("--out", key_out, "Secret key file to write (for tokens and curve, the public key goes to "
                                           "FILE.pub)")->required();
  keygen_cmd->add_flag("--force", key_force, "Replace an existing tokens or curve key (what trusts its public key "
                                             "then needs the new one); a store key is never replaced");

  std::string stats_address = std::string(switchboard::actors::kDefaultMetricsAddress) + ":" +
                              std::to_string(switchboard::actors::kDefaultMetricsPort);
  bool stats_json = false;
  auto* stats_cmd = app.add_subcommand("stats", "Print a running node's metrics (its metrics endpoint) as a table.");
  stats_cmd->add_option("--connect", stats_address, "The node's metrics endpoint, HOST:PORT or http://HOST:PORT/metrics")->capture_default_str();
  stats_cmd->add_flag("--json", stats_json, "One JSON object: every metric with its help, type and samples");

  TokenArgs token_args;
  auto* token_cmd = app.add_subcommand("token", "Issue a signed user token; prints it.");
  token_cmd->add_option("--user", token_args.user, "The user it names")->required();
  token_cmd->add_option("--key", token_args.key, "Signing key file (switchboard keygen --for tokens)")
      ->required()
      ->check(CLI::ExistingFile);
  token_cmd->add_option("--ttl", token_args.ttl_s, "How long it is good for: 90s, 30m, 1h, 7d")
      ->transform(CLI::AsNumberWithUnit(std::map<std::string, std::uint64_t>{{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}},
                                        CLI::AsNumberWithUnit::UNIT_REQUIRED))
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{366} * 86400))
      ->default_str("1h");
  token_cmd->add_option("--room", token_args.rooms, "A room it grants (repeatable)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int status = app.exit(e);
    return status == 0 ? 0 : 2;
  }
  if (*run_cmd) return run(run_args);
  if (*post_cmd) return post(c, text, cmid, mentions, reply_to, thread);
  if (*edit_cmd) return change(c, EntryKind::edit, target, text, true);
  if (*delete_cmd) return change(c, EntryKind::remove, target, text, true);
  if (*react_cmd) return change(c, EntryKind::react, target, text, !off);
  if (*tail_cmd) return tail(c, from, count);
  if (*history_cmd) return history(c, limit, before, after, thread);
  if (*chat_cmd) return chat(c);
  if (*who_cmd) return who(c);
  if (*status_cmd) return status(c);
  if (*room_cmd) {
    const bool needs_user = room_action != "delete" && room_action != "members";
    if (needs_user && c.user.empty()) {
      std::cerr << "switchboard room " << room_action << ": --user is required\n";
      return 2;
    }
    if (room_action == "role" && room_role.empty()) {
      std::cerr << "switchboard room role: --role is required\n";
      return 2;
    }
    return room(c, room_action, room_role, room_private);
  }
  if (*call_cmd) return call(c, service, call_body);
  if (*shards_cmd) return shards(c);
  if (*backup_cmd) return backup(c, backup_out);
  if (*export_cmd) return export_room(c, export_after);
  if (*import_cmd) return import_room(c, import_batch);
  if (*retention_cmd) return retention(c, retention_args);
  if (*trim_cmd) return trim(c, trim_before);
  if (*unread_cmd) return unread(c, marks);
  if (*keygen_cmd) return keygen(key_kind, key_out, key_force);
  if (*token_cmd) return token(token_args);
  if (*check_cmd) return check_config(config_file);
  if (*where_cmd) return where(where_room, where_config);
  if (*stats_cmd) return stats(stats_address, stats_json);
  return 2;
}
