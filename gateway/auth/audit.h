// SPDX-License-Identifier: Apache-2.0
#pragma once

// AuditEvent for every access (contracts/access.md "Audit"): R4 AuditEvents shaped like the IHE
// Basic Audit Log Patterns (BALP), appended to the store and never changed.
//  - type: `rest` (http://terminology.hl7.org/CodeSystem/audit-event-type) for FHIR and gateway
//    routes, DICOM 110114 "User Authentication" for token decisions, and the gateway's
//    `delivery` code for delivery attempts;
//  - subtype: the interaction (restful-interaction `read`, `search`, `create`, `update`,
//    `delete`, `operation`; the gateway's `ingest`, `admin`, `token`, `deliver`);
//  - action, recorded, outcome (0 success, 4 refused or failed request, 8 server failure) and
//    outcomeDesc (the HTTP status and why, never a credential);
//  - agent: the client (its id, or none) with its network address, `requestor`; source: the gateway;
//  - entity: the resources or the patient.
// Records are queued and written by a background thread in batches (one transaction per batch,
// at most kFlushMs after they were recorded); flush() writes what is queued now.
// Refused requests (401/403) are audited at most kRefusedPerWindow times per address per
// minute; the ones beyond are counted and reported on the next one audited.
// Thread-safe.

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gateway/store/store.h"

namespace fhir::gateway::auth {

struct AuditEntry {
  std::string type = "rest";  // "rest", "login", "delivery"
  std::string subtype;        // read, search, create, update, delete, operation, ingest, admin, token, deliver
  char action = 'R';          // C R U D E
  int status = 200;           // HTTP status answered (or received, for deliveries); 0: none
  std::string why;            // outcomeDesc detail; no credentials
  std::string agent;          // client id; empty: no valid token
  std::string address;        // network address of the client (or the delivery endpoint's host)
  std::vector<std::string> entities;  // "Patient/123", "Subscription/abc", a route for non-resources
  std::string query;          // entity.query detail (search parameters), without credentials
};

class AuditLog {
 public:
  static constexpr int64_t kFlushMs = 200;
  static constexpr int kRefusedPerWindow = 20;
  static constexpr int64_t kWindowMs = 60000;

  explicit AuditLog(StorePtr store);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Queues one AuditEvent; `now_ms` is its `recorded`.
  void record(const AuditEntry& entry, int64_t now_ms);
  // Writes everything queued so far; returns once it is durable (or failed).
  Status flush();
  // Flushes and ends the writer thread.
  void stop();

  // The AuditEvent JSON of an entry (without `id`).
  static std::string toJson(const AuditEntry& entry, int64_t now_ms, int64_t suppressed);
  // The store's record of an entry (its JSON, client, address, entities).
  static AuditRecord toRecord(const AuditEntry& entry, int64_t now_ms, int64_t suppressed);
  // `json` (stored without id) with `"id":"<id>"` as its second member.
  static std::string withId(const std::string& json, int64_t id);

 private:
  void run();
  Status writeBatch(std::unique_lock<std::mutex>& lock);

  StorePtr store_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable written_;
  std::vector<AuditRecord> queue_;
  uint64_t queued_total_ = 0;
  uint64_t written_total_ = 0;
  bool writing_ = false;
  bool stopping_ = false;
  struct Window {
    int64_t start_ms = 0;
    int count = 0;
    int64_t suppressed = 0;
  };
  std::map<std::string, Window> refused_;  // per address
  std::thread writer_;
};

// The AuditEvent of the request a thread is serving, for the write that request commits
// (access.md: written with the data, same transaction). The HTTP router opens one around each
// audited request; a write on that thread (an ingest commit, a Subscription row) takes its
// record into the store call (take) and, once the store says it was appended there, confirms it
// (written), so the router does not queue it again. Reads and refusals write nothing: their
// records stay on AuditLog's background writer.
class PendingAudit {
 public:
  explicit PendingAudit(AuditEntry& entry);
  ~PendingAudit();
  PendingAudit(const PendingAudit&) = delete;
  PendingAudit& operator=(const PendingAudit&) = delete;

  // This thread's, or null.
  static PendingAudit* current();
  // The record of the entry as answered `status`, naming `entities` (empty: the entry's);
  // nullopt once a record was written.
  std::optional<AuditRecord> take(int status, const std::vector<std::string>& entities, int64_t now_ms);
  // The record taken last is in the store (appended in the write's transaction).
  void written() { written_ = true; }
  bool isWritten() const { return written_; }
  // The status the written record says.
  int writtenStatus() const { return status_; }

 private:
  AuditEntry& entry_;
  PendingAudit* previous_;
  bool written_ = false;
  int status_ = 0;
};

// GET /fhir/AuditEvent?date=&agent=&entity=&subtype=&_count= (admin only; the route checks):
// a `searchset` Bundle of the matching AuditEvents, oldest first. `date` takes the FHIR prefixes
// eq (default), ge, gt, le, lt and a date or an instant (repeat it for a range); `agent` a client
// id or a network address; `entity` a reference (`Patient/123`); `subtype` a code or
// `system|code`. A parameter not listed, or a bad value, is 400 (`status` and the diagnostics in
// `body`).
struct AuditSearchAnswer {
  int status = 200;
  std::string body;  // the Bundle, or the reason of a 400 / 503
};
AuditSearchAnswer searchAudit(Store& store, const std::vector<std::pair<std::string, std::string>>& parameters,
                              const std::string& base_url);

}  // namespace fhir::gateway::auth
