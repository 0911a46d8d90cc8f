// Thin move-only RAII wrappers over the LMDB C API (lmdb.h), for HistoryStore.
//
// Each wrapper owns one LMDB handle and releases it in its destructor: an Env closes
// its environment, a ReadTxn or WriteTxn aborts unless it was committed, a Cursor
// closes itself. Nothing is hidden: flags and cursor ops are LMDB's own (MDB_*), and
// failures are LMDB's return codes, carried as a Status (code + the call that failed)
// rather than thrown. MDB_NOTFOUND is a Status like any other: check not_found().
//
// Lifetimes follow LMDB's rules, which these types do not check:
//  - transactions and cursors must be gone before their Env is destroyed;
//  - a Cursor must be destroyed before its transaction ends (LMDB frees a write
//    transaction's cursors itself, so closing one afterwards is a use-after-free);
//  - a string_view returned by get() or by a Cursor points into the map and is valid
//    only until the transaction ends or, in a WriteTxn, until its next write.
#pragma once

#include <lmdb.h>

#include "switchboard/common/error.hpp"

#include <cassert>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace switchboard::persistence::lmdb {

/// The outcome of an LMDB call: its return code and the name of the call.
struct Status {
  int code = MDB_SUCCESS;  ///< MDB_SUCCESS, an MDB_* code, or an errno value
  const char* op = "";     ///< the LMDB function that returned `code`, e.g. "mdb_put"

  bool ok() const noexcept { return code == MDB_SUCCESS; }
  bool not_found() const noexcept { return code == MDB_NOTFOUND; }
  bool map_full() const noexcept { return code == MDB_MAP_FULL; }
  /// "<op>: <mdb_strerror(code)>", e.g. "mdb_put: MDB_MAP_FULL: Environment mapsize
  /// limit reached".
  std::string message() const;
};

/// Either a T or the failed Status: switchboard::Result with LMDB's codes.
template <class T>
using Expected = switchboard::Result<T, Status>;

/// A named database inside an environment (MDB_dbi). A plain copyable handle, not an
/// owner: LMDB frees database handles when the environment closes, and closing one
/// earlier (mdb_dbi_close) is only safe when no transaction can still use it, so
/// nothing here ever does.
struct Dbi {
  MDB_dbi handle = 0;
};

/// One key/value pair seen through a cursor. Both views point into the map.
struct Entry {
  std::string_view key;
  std::string_view value;
};

/// A cursor over one database in one transaction (MDB_cursor).
class Cursor {
 public:
  Cursor(Cursor&& other) noexcept : cursor_(std::exchange(other.cursor_, nullptr)) {}
  Cursor& operator=(Cursor&& other) noexcept;
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  ~Cursor();  ///< mdb_cursor_close; see the lifetime rule at the top of this file

  /// Moves the cursor per `op` (MDB_FIRST, MDB_LAST, MDB_NEXT, MDB_PREV,
  /// MDB_GET_CURRENT) and returns the entry it lands on.
  /// Errors: MDB_NOTFOUND past either end or in an empty database; EINVAL for an op
  /// that needs a key (use seek/find).
  Expected<Entry> get(MDB_cursor_op op);
  /// MDB_SET_RANGE: positions at the first entry with key >= `key`.
  /// Errors: MDB_NOTFOUND if every key is smaller.
  Expected<Entry> seek(std::string_view key);
  /// MDB_SET_KEY: positions at the entry with exactly `key`.
  /// Errors: MDB_NOTFOUND if there is none (the position is then undefined).
  Expected<Entry> find(std::string_view key);
  /// mdb_cursor_del: deletes the entry the cursor is at (a write transaction's cursor).
  Status del();

  MDB_cursor* handle() const noexcept { return cursor_; }

 private:
  friend class TxnBase;
  explicit Cursor(MDB_cursor* cursor) noexcept : cursor_(cursor) {}
  Expected<Entry> move(MDB_val* key, MDB_cursor_op op);

  MDB_cursor* cursor_ = nullptr;
};

/// What read and write transactions share. Not used on its own.
class TxnBase {
 public:
  TxnBase(const TxnBase&) = delete;
  TxnBase& operator=(const TxnBase&) = delete;

  /// mdb_get: the value stored under `key`.
  /// Errors: MDB_NOTFOUND if there is none; MDB_BAD_VALSIZE for an empty key or one
  /// longer than mdb_env_get_maxkeysize().
  Expected<std::string_view> get(Dbi dbi, std::string_view key) const;
  /// mdb_cursor_open on `dbi`. The cursor must be destroyed before this transaction
  /// ends.
  Expected<Cursor> cursor(Dbi dbi) const;

  /// True until the transaction is committed or aborted.
  bool active() const noexcept { return txn_ != nullptr; }
  MDB_txn* handle() const noexcept { return txn_; }

 protected:
  TxnBase() = default;
  explicit TxnBase(MDB_txn* txn) noexcept : txn_(txn) {}
  TxnBase(TxnBase&& other) noexcept : txn_(std::exchange(other.txn_, nullptr)) {}
  TxnBase& operator=(TxnBase&& other) noexcept;
  ~TxnBase();  ///< mdb_txn_abort if still active

  MDB_txn* txn_ = nullptr;
};

/// A read-only transaction (MDB_RDONLY): a consistent snapshot of the environment.
/// Aborted (its reader slot released) when destroyed. Keep it short: a long-lived
/// reader stops LMDB from reusing pages and the file grows.
class ReadTxn : public TxnBase {
 public:
  ReadTxn(ReadTxn&&) noexcept = default;
  ReadTxn& operator=(ReadTxn&&) noexcept = default;

  /// mdb_dbi_open of an existing named database (no MDB_CREATE: a read-only
  /// environment, such as a copy, cannot create one). Errors: MDB_NOTFOUND.
  Expected<Dbi> open_dbi(const char* name);

 private:
  friend class Env;
  explicit ReadTxn(MDB_txn* txn) noexcept : TxnBase(txn) {}
};

/// The write transaction (one at a time per environment). Aborted when destroyed
/// unless commit() was called.
class WriteTxn : public TxnBase {
 public:
  WriteTxn(WriteTxn&&) noexcept = default;
  WriteTxn& operator=(WriteTxn&&) noexcept = default;

  /// mdb_dbi_open: opens (with MDB_CREATE, creates) the named database. The handle
  /// is usable by other transactions only once this one commits.
  /// Errors: MDB_NOTFOUND (no such database and no MDB_CREATE); MDB_DBS_FULL (more
  /// than EnvOptions::max_dbs).
  Expected<Dbi> open_dbi(const char* name, unsigned flags);
  /// mdb_put `key` -> `value` with `flags` (0, MDB_NOOVERWRITE, MDB_APPEND, ...).
  /// Errors: MDB_KEYEXIST (MDB_NOOVERWRITE and the key exists); MDB_MAP_FULL (the
  /// transaction is then unusable: abort it); MDB_TXN_FULL; MDB_BAD_VALSIZE.
  Status put(Dbi dbi, std::string_view key, std::string_view value, unsigned flags = 0);
  /// mdb_del `key`. Errors: MDB_NOTFOUND if there is none; MDB_MAP_FULL.
  Status del(Dbi dbi, std::string_view key);
  /// mdb_txn_commit. The transaction is over whatever the outcome (LMDB frees it on
  /// failure too). Errors: MDB_MAP_FULL, ENOSPC, EIO, ...
  Status commit();
  /// mdb_txn_abort, if still active.
  void abort() noexcept;

 private:
  friend class Env;
  explicit WriteTxn(MDB_txn* txn) noexcept : TxnBase(txn) {}
};

/// How to open an environment.
struct EnvOptions {
  std::size_t map_size = 10u << 20;   ///< mdb_env_set_mapsize; LMDB's default is 10 MiB
  unsigned max_dbs = 0;               ///< mdb_env_set_maxdbs: named databases allowed
  unsigned flags = 0;                 ///< mdb_env_open flags (MDB_NOTLS, MDB_NOSYNC, ...)
  mdb_mode_t mode = 0644;             ///< permissions of files LMDB creates
};

/// An LMDB environment (MDB_env): one memory map over one directory. Closed when
/// destroyed. Never open the same directory twice in one process: LMDB's locks are
/// per process and closing one copy releases the other's.
class Env {
 public:
  /// mdb_env_create + mdb_env_set_maxdbs + mdb_env_set_mapsize + mdb_env_open on the
  /// existing directory `dir`.
  /// Errors: ENOENT / EACCES for the directory; MDB_INVALID (not an LMDB file);
  /// MDB_VERSION_MISMATCH; EAGAIN (locked by another process with MDB_LOCK).
  static Expected<Env> open(const std::string& dir, const EnvOptions& options);

  Env(Env&& other) noexcept : env_(std::exchange(other.env_, nullptr)) {}
  Env& operator=(Env&& other) noexcept;
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;
  ~Env();  ///< mdb_env_close; every transaction and cursor must be gone

  /// mdb_txn_begin(MDB_RDONLY).
  /// Errors: MDB_READERS_FULL, MDB_MAP_RESIZED, MDB_PANIC.
  Expected<ReadTxn> begin_read() const;
  /// mdb_txn_begin for writing. One write transaction at a time.
  /// Errors: MDB_MAP_RESIZED, MDB_PANIC, ENOMEM.
  Expected<WriteTxn> begin_write();

  /// mdb_env_set_mapsize on the open environment; 0 adopts the size recorded in the
  /// file (after MDB_MAP_RESIZED). Only legal while no transaction is active in this
  /// process. Errors: EINVAL (a write transaction is active).
  Status set_map_size(std::size_t bytes);
  /// The current map size in bytes (mdb_env_info's me_mapsize).
  std::size_t map_size() const noexcept;
  /// Bytes of the map in use: (mdb_env_info's me_last_pgno + 1) x mdb_env_stat's
  /// ms_psize. The data file is at least this large.
  std::size_t used_bytes() const noexcept;
  /// Largest key accepted by put/get (mdb_env_get_maxkeysize), 511 by default.
  std::size_t max_key_size() const noexcept;
  /// mdb_env_sync. With `force`, flushes even under MDB_NOSYNC.
  Status sync(bool force);
  /// mdb_env_copy2: a consistent copy of the environment (one read transaction; writers
  /// go on) into the existing, empty directory `dir`, as its data.mdb. With `compact`
  /// (MDB_CP_COMPACT) free pages are left out and pages renumbered.
  Status copy_to(const std::string& dir, bool compact) const;

  MDB_env* handle() const noexcept { return env_; }

 private:
  explicit Env(MDB_env* env) noexcept : env_(env) {}

  MDB_env* env_ = nullptr;
};

}  // namespace switchboard::persistence::lmdb
