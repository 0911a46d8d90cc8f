// The table of the client protocol's operations: what each one is, in one place. The
// codec's names, chat's routing (which requests name a room, which only read it, which
// go through a batch), service grants and the metrics' labels are all read from here,
// so that an operation is added in one place (as Redis keeps one command table).
#pragma once

#include <array>
#include <cstddef>
#include <string_view>
#include <utility>
#include <variant>

#include "switchboard/transport/messages.hpp"

namespace switchboard::transport {

/// What a service grant must allow for an operation (docs/SECURITY.md).
enum class Access : std::uint8_t { none, read, write, manage };

struct OpTraits {
  std::string_view name;  ///< the wire name
  Access access;          ///< the right it needs
  /// It is about one room (a `room` field): it goes to the room's owner, and a private
  /// room is not there for a non-member.
  bool names_room;
  /// It changes rooms, members or history: it goes through a chat batch and is durable
  /// before its reply.
  bool batched;
};

template <class T>
struct OpOf;  // one specialization per request type, below
// clang-format off
template <> struct OpOf<Hello>        { static constexpr OpTraits traits{"hello",         Access::none,   false, false}; };
template <> struct OpOf<Ping>         { static constexpr OpTraits traits{"ping",          Access::none,   false, false}; };
template <> struct OpOf<CreateRoom>   { static constexpr OpTraits traits{"create_room",   Access::write,  true,  true}; };
template <> struct OpOf<Join>         { static constexpr OpTraits traits{"join",          Access::write,  true,  true}; };
template <> struct OpOf<Leave>        { static constexpr OpTraits traits{"leave",         Access::write,  true,  true}; };
template <> struct OpOf<ListRooms>    { static constexpr OpTraits traits{"rooms",         Access::read,   false, false}; };
template <> struct OpOf<Members>      { static constexpr OpTraits traits{"members",       Access::read,   true,  false}; };
template <> struct OpOf<Publish>      { static constexpr OpTraits traits{"publish",       Access::write,  true,  true}; };
template <> struct OpOf<History>      { static constexpr OpTraits traits{"history",       Access::read,   true,  false}; };
template <> struct OpOf<LastSeq>      { static constexpr OpTraits traits{"last_seq",      Access::read,   true,  false}; };
template <> struct OpOf<Call>         { static constexpr OpTraits traits{"call",          Access::write,  false, false}; };
template <> struct OpOf<AddMember>    { static constexpr OpTraits traits{"add_member",    Access::manage, true,  true}; };
template <> struct OpOf<RemoveMember> { static constexpr OpTraits traits{"remove_member", Access::manage, true,  true}; };
template <> struct OpOf<SetRole>      { static constexpr OpTraits traits{"set_role",      Access::manage, true,  true}; };
template <> struct OpOf<DeleteRoom>   { static constexpr OpTraits traits{"delete_room",   Access::manage, true,  true}; };
template <> struct OpOf<ListShards>   { static constexpr OpTraits traits{"shards",        Access::read,   false, false}; };
template <> struct OpOf<PublishBatch> { static constexpr OpTraits traits{"publish_batch", Access::write,  true,  true}; };
template <> struct OpOf<MarkRead>     { static constexpr OpTraits traits{"mark_read",     Access::write,  true,  true}; };
template <> struct OpOf<SetReceipts>  { static constexpr OpTraits traits{"set_receipts",  Access::manage, true,  true}; };
template <> struct OpOf<ReadMarkers>  { static constexpr OpTraits traits{"read_markers",  Access::read,   true,  false}; };
template <> struct OpOf<Backup>       { static constexpr OpTraits traits{"backup",        Access::manage, false, false}; };
template <> struct OpOf<SetRetention> { static constexpr OpTraits traits{"set_retention", Access::manage, true,  true}; };
template <> struct OpOf<ImportBatch>  { static constexpr OpTraits traits{"import_batch",  Access::manage, true,  true}; };
template <> struct OpOf<TrimHistory>  { static constexpr OpTraits traits{"trim_history",  Access::manage, true,  true}; };
template <> struct OpOf<Ban>          { static constexpr OpTraits traits{"ban",           Access::manage, true,  true}; };
template <> struct OpOf<Unban>        { static constexpr OpTraits traits{"unban",         Access::manage, true,  true}; };
template <> struct OpOf<SetNotify>    { static constexpr OpTraits traits{"set_notify",    Access::write,  true,  true}; };
template <> struct OpOf<Kick>         { static constexpr OpTraits traits{"kick",          Access::manage, true,  true}; };
template <> struct OpOf<Disconnect>   { static constexpr OpTraits traits{"disconnect",    Access::manage, false, false}; };
// clang-format on

namespace detail {
template <class Variant, std::size_t... I>
constexpr auto op_table(std::index_sequence<I...>) {
  return std::array<OpTraits, sizeof...(I)>{OpOf<std::variant_alternative_t<I, Variant>>::traits...};
}
}  // namespace detail

/// Every request operation's traits, by its index in RequestBody.
inline constexpr auto kRequestOps =
    detail::op_table<RequestBody>(std::make_index_sequence<std::variant_size_v<RequestBody>>{});

inline const OpTraits& traits(const RequestBody& request) noexcept { return kRequestOps[request.index()]; }
template <class T>
inline constexpr const OpTraits& traits_of = OpOf<T>::traits;

/// The room a request is about (traits().names_room), or nullptr.
inline const std::string* room_of(const RequestBody& request) noexcept {
  return std::visit(
      [](const auto& r) -> const std::string* {
        if constexpr (OpOf<std::decay_t<decltype(r)>>::traits.names_room) return &r.room;
        else return nullptr;
      },
      request);
}

/// The index in RequestBody of the operation named `name`, or nullopt.
inline std::optional<std::size_t> op_index(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kRequestOps.size(); ++i)
    if (kRequestOps[i].name == name) return i;
  return std::nullopt;
}

}  // namespace switchboard::transport
