// Switchboard's error codes and the Result type every fallible call returns.
//
// Expected failures are values: a call that can fail in normal operation returns
// Result<T>, holding either a T or an Error (a stable code plus a readable message).
// Broken invariants are exceptions. The codes are part of the wire protocol: their
// names (errc_name) are what clients see in an error reply (docs/PROTOCOL.md).
#pragma once

#include <cassert>
#include <string>
#include <cstddef>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>

namespace switchboard {

/// Stable error codes. Never renumber or rename: clients match on the names.
enum class errc {
  ok = 0,
  /// The frame is not a single msgpack map (malformed msgpack, trailing bytes,
  /// wrong number of frames, not a map at the top).
  bad_frame,
  /// A frame, string, array, map or nesting depth exceeds the node's limits.
  too_large,
  /// A required field is missing, has the wrong type or an invalid value.
  bad_field,
  /// A text field is not valid UTF-8.
  bad_utf8,
  /// The frame's protocol version "v" is not one this node speaks.
  unsupported_version,
  /// The frame's "op" is not an operation this node knows.
  unknown_op,
  /// The room does not exist.
  no_such_room,
  /// The user is not a member of the room.
  not_member,
  /// The node cannot serve the request now (storage error, shutting down);
  /// retrying later with the same client message id is safe.
  unavailable,
  /// The history store is full and may not grow further; nothing was written.
  storage_full,
  /// The request waited longer than its deadline (client side).
  timeout,
  /// A failure inside the node that is not the caller's fault.
  internal,
  /// The presence session is not known (expired, closed, or the presence actor
  /// restarted): open it again.
  unknown_session,
  /// Too many requests of this kind too quickly; slow down.
  rate_limited,
  /// A service hooked into chat (a moderation bot, say) refused the message; the
  /// message says why. Nothing was stored.
  refused,
  /// `call`: the topology names no service by that name.
  no_such_service,
  /// The user's token is missing, malformed, forged, signed with another key, or
  /// expired: get a new one.
  unauthenticated,
  /// A count the node caps per user is reached: rooms one user is a member of
  /// (Limits::max_rooms_per_user), or presence sessions one user holds (the topology's
  /// [presence] max_sessions_per_user). Leave a room or close a session first.
  limit_reached,
  /// The request is understood, but the one asking may not do it: a reader
  /// publishing, a member managing a room, a service outside its grant.
  forbidden,
  /// `create_room`: the name cannot be used for a new room. It is held by a room the
  /// one asking cannot see (a private room they are not in); the answer does not say
  /// which (docs/SECURITY.md).
  name_unavailable,
  /// An edit, delete or react names a target that is not a message of the room: no
  /// entry at that seq (none yet, or trimmed), or a lifecycle entry.
  no_such_message,
  /// An edit, delete or react of a message that was deleted.
  message_deleted,
  /// An edit or delete past its window ([limits] edit_window_s, delete_window_s).
  too_late,
  /// A react that changes nothing: the user's reaction with that key is there already
  /// (on), or is not there (off).
  no_change,
  /// A publish's `thread` names a message that is itself in a thread: threads do not
  /// nest.
  nested_thread,
  // A new code goes above this line, and its name at the end of error.cpp's list.
};
/// How many codes there are (every value below it has a wire name).
inline constexpr std::size_t kErrcCount = static_cast<std::size_t>(errc::nested_thread) + 1;

/// The wire name of a code ("bad_frame", "too_large", ...).
std::string_view errc_name(errc code) noexcept;
/// Parses a wire name; unknown names map to errc::internal.
errc errc_from_name(std::string_view name) noexcept;

const std::error_category& switchboard_category() noexcept;
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), switchboard_category()};
}

/// An expected failure: a stable code and a message for people.
struct Error {
  errc code = errc::internal;
  std::string message;

  friend bool operator==(const Error&, const Error&) = default;
};

/// Either a value or an error (an Error unless said otherwise). A small stand-in for
/// C++23's std::expected.
template <class T, class E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(E error) : v_(std::move(error)) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  /// The failure; only when !ok().
  const E& error() const { assert(!ok()); return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

/// Result of a call that returns nothing on success.
template <class E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;
  Result(E error) : error_(std::move(error)), ok_(false) {}

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const E& error() const { assert(!ok_); return error_; }

 private:
  E error_{};
  bool ok_ = true;
};

inline Error make_error(errc code, std::string message) { return Error{code, std::move(message)}; }

}  // namespace switchboard

template <>
struct std::is_error_code_enum<switchboard::errc> : std::true_type {};
