#include "switchboard/persistence/lmdb.hpp"

namespace switchboard::persistence::lmdb {
namespace {

MDB_val to_val(std::string_view bytes) noexcept {
  // LMDB never writes through mv_data of a key or of a value given to mdb_put.
  return MDB_val{bytes.size(), const_cast<char*>(bytes.data())};
}

std::string_view to_view(const MDB_val& val) noexcept {
  return {static_cast<const char*>(val.mv_data), val.mv_size};
}

}  // namespace

std::string Status::message() const {
  std::string text = op;
  text += ": ";
  text += mdb_strerror(code);
  return text;
}

// --- Cursor ---------------------------------------------------------------------

Cursor& Cursor::operator=(Cursor&& other) noexcept {
  if (this != &other) {
    if (cursor_ != nullptr) mdb_cursor_close(cursor_);
    cursor_ = std::exchange(other.cursor_, nullptr);
  }
  return *this;
}

Cursor::~Cursor() {
  if (cursor_ != nullptr) mdb_cursor_close(cursor_);
}

Expected<Entry> Cursor::move(MDB_val* key, MDB_cursor_op op) {
  MDB_val value{};
  if (int rc = mdb_cursor_get(cursor_, key, &value, op); rc != MDB_SUCCESS)
    return Status{rc, "mdb_cursor_get"};
  return Entry{to_view(*key), to_view(value)};
}

Expected<Entry> Cursor::get(MDB_cursor_op op) {
  MDB_val key{};
  return move(&key, op);
}

Expected<Entry> Cursor::seek(std::string_view key) {
  MDB_val k = to_val(key);
  return move(&k, MDB_SET_RANGE);
}

Expected<Entry> Cursor::find(std::string_view key) {
  MDB_val k = to_val(key);
  return move(&k, MDB_SET_KEY);
}

Status Cursor::del() { return Status{mdb_cursor_del(cursor_, 0), "mdb_cursor_del"}; }

// --- transactions ---------------------------------------------------------------

TxnBase& TxnBase::operator=(TxnBase&& other) noexcept {
  if (this != &other) {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
    txn_ = std::exchange(other.txn_, nullptr);
  }
  return *this;
}

TxnBase::~TxnBase() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}

Expected<std::string_view> TxnBase::get(Dbi dbi, std::string_view key) const {
  MDB_val k = to_val(key);
  MDB_val value{};
  if (int rc = mdb_get(txn_, dbi.handle, &k, &value); rc != MDB_SUCCESS)
    return Status{rc, "mdb_get"};
  return to_view(value);
}

Expected<Cursor> TxnBase::cursor(Dbi dbi) const {
  MDB_cursor* cursor = nullptr;
  if (int rc = mdb_cursor_open(txn_, dbi.handle, &cursor); rc != MDB_SUCCESS)
    return Status{rc, "mdb_cursor_open"};
  return Cursor(cursor);
}

Expected<Dbi> ReadTxn::open_dbi(const char* name) {
  MDB_dbi dbi = 0;
  if (int rc = mdb_dbi_open(txn_, name, 0, &dbi); rc != MDB_SUCCESS) return Status{rc, "mdb_dbi_open"};
  return Dbi{dbi};
}

Expected<Dbi> WriteTxn::open_dbi(const char* name, unsigned flags) {
  MDB_dbi dbi = 0;
  if (int rc = mdb_dbi_open(txn_, name, flags, &dbi); rc != MDB_SUCCESS)
    return Status{rc, "mdb_dbi_open"};
  return Dbi{dbi};
}

Status WriteTxn::put(Dbi dbi, std::string_view key, std::string_view value, unsigned flags) {
  MDB_val k = to_val(key);
  MDB_val v = to_val(value);
  return Status{mdb_put(txn_, dbi.handle, &k, &v, flags), "mdb_put"};
}

Status WriteTxn::del(Dbi dbi, std::string_view key) {
  MDB_val k = to_val(key);
  return Status{mdb_del(txn_, dbi.handle, &k, nullptr), "mdb_del"};
}

Status WriteTxn::commit() {
  // mdb_txn_commit frees the transaction on failure as well as on success.
  return Status{mdb_txn_commit(std::exchange(txn_, nullptr)), "mdb_txn_commit"};
}

void WriteTxn::abort() noexcept {
  if (txn_ != nullptr) mdb_txn_abort(std::exchange(txn_, nullptr));
}

// --- Env ------------------------------------------------------------------------

Expected<Env> Env::open(const std::string& dir, const EnvOptions& options) {
  MDB_env* raw = nullptr;
  if (int rc = mdb_env_create(&raw); rc != MDB_SUCCESS) return Status{rc, "mdb_env_create"};
  Env env(raw);  // closes the handle on every failure below, as mdb_env_open requires
  if (int rc = mdb_env_set_maxdbs(raw, options.max_dbs); rc != MDB_SUCCESS)
    return Status{rc, "mdb_env_set_maxdbs"};
  if (int rc = mdb_env_set_mapsize(raw, options.map_size); rc != MDB_SUCCESS)
    return Status{rc, "mdb_env_set_mapsize"};
  if (int rc = mdb_env_open(raw, dir.c_str(), options.flags, options.mode); rc != MDB_SUCCESS)
    return Status{rc, "mdb_env_open"};
  return env;
}

Env& Env::operator=(Env&& other) noexcept {
  if (this != &other) {
    if (env_ != nullptr) mdb_env_close(env_);
    env_ = std::exchange(other.env_, nullptr);
  }
  return *this;
}

Env::~Env() {
  if (env_ != nullptr) mdb_env_close(env_);
}

Status Env::copy_to(const std::string& dir, bool compact) const {
  return Status{mdb_env_copy2(env_, dir.c_str(), compact ? MDB_CP_COMPACT : 0u), "mdb_env_copy2"};
}

Expected<ReadTxn> Env::begin_read() const {
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn); rc != MDB_SUCCESS)
    return Status{rc, "mdb_txn_begin"};
  return ReadTxn(txn);
}

Expected<WriteTxn> Env::begin_write() {
  MDB_txn* txn = nullptr;
  if (int rc = mdb_txn_begin(env_, nullptr, 0, &txn); rc != MDB_SUCCESS)
    return Status{rc, "mdb_txn_begin"};
  return WriteTxn(txn);
}

Status Env::set_map_size(std::size_t bytes) {
  return Status{mdb_env_set_mapsize(env_, bytes), "mdb_env_set_mapsize"};
}

std::size_t Env::map_size() const noexcept {
  MDB_envinfo info{};
  if (mdb_env_info(env_, &info) != MDB_SUCCESS) return 0;
  return info.me_mapsize;
}

std::size_t Env::used_bytes() const noexcept {
  MDB_envinfo info{};
  MDB_stat stat{};
  if (mdb_env_info(env_, &info) != MDB_SUCCESS || mdb_env_stat(env_, &stat) != MDB_SUCCESS) return 0;
  return (info.me_last_pgno + 1) * stat.ms_psize;
}

std::size_t Env::max_key_size() const noexcept {
  return static_cast<std::size_t>(mdb_env_get_maxkeysize(env_));
}

Status Env::sync(bool force) {
  return Status{mdb_env_sync(env_, force ? 1 : 0), "mdb_env_sync"};
}

}  // namespace switchboard::persistence::lmdb
