// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/audit.h"

#include <chrono>
#include <algorithm>
#include <cctype>
#include <ctime>

#include "conformance/json/json.h"

namespace fhir::gateway::auth {
namespace {

constexpr const char* kGatewayCodes = "https://fhir.alignment-gateway.org/CodeSystem/audit-subtype";

std::string quoted(std::string_view text) {
  std::string out = "\"";
  json::appendEscaped(text, out);
  return out + "\"";
}

std::string isoOf(int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms % 1000));
  return buffer;
}

bool isRestful(const std::string& subtype) {
  return subtype == "read" || subtype == "vread" || subtype == "search" || subtype == "create" || subtype == "update" ||
         subtype == "delete" || subtype == "history" || subtype == "operation";
}

std::string coding(std::string_view system, std::string_view code, std::string_view display) {
  std::string out = "{\"system\":" + quoted(system) + ",\"code\":" + quoted(code);
  if (!display.empty()) out += ",\"display\":" + quoted(display);
  return out + "}";
}

}  // namespace

AuditLog::AuditLog(StorePtr store) : store_(std::move(store)) {
  writer_ = std::thread([this] { run(); });
}

AuditLog::~AuditLog() { stop(); }

std::string AuditLog::toJson(const AuditEntry& entry, int64_t now_ms, int64_t suppressed) {
  std::string type;
  if (entry.type == "login") {
    type = coding("http://dicom.nema.org/resources/ontology/DCM", "110114", "User Authentication");
  } else if (entry.type == "rest") {
    type = coding("http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "RESTful Operation");
  } else {
    type = coding(kGatewayCodes, entry.type, "");
  }
  const std::string subtype = isRestful(entry.subtype) ? coding("http://hl7.org/fhir/restful-interaction", entry.subtype, "")
                                                       : coding(kGatewayCodes, entry.subtype, "");
  const char* outcome = entry.status >= 500 || (entry.status == 0 && !entry.why.empty()) ? "8"
                        : entry.status >= 400 || (entry.status >= 300 && entry.type == "delivery") ? "4"
                                                                                                  : "0";
  std::string description = entry.status > 0 ? std::to_string(entry.status) : std::string();
  if (!entry.why.empty()) description += (description.empty() ? "" : " ") + entry.why;
  if (suppressed > 0) {
    description += " (" + std::to_string(suppressed) + " earlier refused requests from this address were not audited one by one)";
  }
  std::string out = "{\"resourceType\":\"AuditEvent\",\"type\":" + type + ",\"subtype\":[" + subtype + "],\"action\":\"" +
                    std::string(1, entry.action) + "\",\"recorded\":" + quoted(isoOf(now_ms)) + ",\"outcome\":\"" + outcome +
                    "\"";
  if (!description.empty()) out += ",\"outcomeDesc\":" + quoted(description);
  // The client: BALP's client agent (DICOM 110153 Source Role ID), its network address.
  out += ",\"agent\":[{\"type\":{\"coding\":[" +
         coding("http://dicom.nema.org/resources/ontology/DCM", "110153", "Source Role ID") + "]},\"who\":";
  if (!entry.agent.empty()) {
    out += "{\"identifier\":{\"system\":\"https://fhir.alignment-gateway.org/client\",\"value\":" + quoted(entry.agent) +
           "},\"display\":" + quoted(entry.agent) + "}";
  } else {
    out += "{\"display\":\"no valid access token\"}";
  }
  out += ",\"requestor\":true";
  if (!entry.address.empty()) out += ",\"network\":{\"address\":" + quoted(entry.address) + ",\"type\":\"2\"}";
  out += "}]";
  out += ",\"source\":{\"observer\":{\"display\":\"fhir-gateway\"},\"type\":[" +
         coding("http://terminology.hl7.org/CodeSystem/security-source-type", "4", "Application Server") + "]}";
  if (!entry.entities.empty() || !entry.query.empty()) {
    out += ",\"entity\":[";
    bool first = true;
    for (const std::string& entity : entry.entities) {
      if (!first) out += ",";
      first = false;
      const bool reference = entity.find('/') != std::string::npos && entity[0] != '/';
      out += reference ? "{\"what\":{\"reference\":" + quoted(entity) + "}" : "{\"what\":{\"display\":" + quoted(entity) + "}";
      if (reference && entity.rfind("Patient/", 0) == 0) {
        out += ",\"role\":" + coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient");
      }
      out += "}";
    }
    if (!entry.query.empty()) {
      if (!first) out += ",";
      out += "{\"role\":" + coding("http://terminology.hl7.org/CodeSystem/object-role", "24", "Query") +
             ",\"description\":" + quoted(entry.query) + "}";
    }
    out += "]";
  }
  return out + "}";
}

std::string AuditLog::withId(const std::string& json_text, int64_t id) {
  static constexpr std::string_view kHead = "{\"resourceType\":\"AuditEvent\"";
  if (json_text.rfind(kHead, 0) != 0) return json_text;
  return std::string(kHead) + ",\"id\":\"" + std::to_string(id) + "\"" + json_text.substr(kHead.size());
}

AuditRecord AuditLog::toRecord(const AuditEntry& entry, int64_t now_ms, int64_t suppressed) {
  AuditRecord record;
  record.recorded_ms = now_ms;
  record.subtype = entry.subtype;
  record.agent = entry.agent;
  record.address = entry.address;
  record.entities = entry.entities;
  record.json = toJson(entry, now_ms, suppressed);
  return record;
}

namespace {
thread_local PendingAudit* current_pending = nullptr;
}  // namespace

PendingAudit::PendingAudit(AuditEntry& entry) : entry_(entry), previous_(current_pending) { current_pending = this; }

PendingAudit::~PendingAudit() { current_pending = previous_; }

PendingAudit* PendingAudit::current() { return current_pending; }

std::optional<AuditRecord> PendingAudit::take(int status, const std::vector<std::string>& entities, int64_t now_ms) {
  if (written_ || entry_.subtype.empty()) return std::nullopt;
  AuditEntry entry = entry_;
  entry.status = status;
  if (!entities.empty()) entry.entities = entities;
  status_ = status;
  return AuditLog::toRecord(entry, now_ms, 0);
}

void AuditLog::record(const AuditEntry& entry, int64_t now_ms) {
  int64_t suppressed = 0;
  std::lock_guard lock(mutex_);
  if (stopping_) return;
  if (entry.status == 401 || entry.status == 403 || (entry.type == "login" && entry.status >= 400)) {
    if (refused_.size() > 10000) refused_.clear();  // bounded: a flood of addresses
    Window& window = refused_[entry.address];
    if (now_ms - window.start_ms >= kWindowMs) {
      suppressed = window.suppressed;
      window = Window{now_ms, 0, 0};
    }
    if (window.count >= kRefusedPerWindow) {
      ++window.suppressed;
      return;
    }
    ++window.count;
  }
  queue_.push_back(toRecord(entry, now_ms, suppressed));
  ++queued_total_;
  if (queue_.size() >= 512) wake_.notify_all();
}

Status AuditLog::writeBatch(std::unique_lock<std::mutex>& lock) {
  std::vector<AuditRecord> batch;
  batch.swap(queue_);
  const uint64_t upto = written_total_ + batch.size();
  writing_ = true;
  lock.unlock();
  Status written = store_->appendAudit(std::move(batch));
  lock.lock();
  writing_ = false;
  written_total_ = upto;
  written_.notify_all();
  return written;
}

void AuditLog::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait_for(lock, std::chrono::milliseconds(kFlushMs), [this] { return stopping_ || queue_.size() >= 512; });
    if (!queue_.empty() && !writing_) (void)writeBatch(lock);
    if (stopping_ && queue_.empty() && !writing_) return;
  }
}

Status AuditLog::flush() {
  std::unique_lock lock(mutex_);
  const uint64_t target = queued_total_;
  Status status = Status::Ok();
  while (written_total_ < target) {
    if (!writing_ && !queue_.empty()) {
      status = writeBatch(lock);
    } else {
      written_.wait(lock);
    }
  }
  return status;
}

void AuditLog::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ && !writer_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
}

namespace {

// [lo, hi) in ms of a FHIR date or instant (its precision decides the width); false when bad.
bool instantRange(std::string_view text, int64_t& lo, int64_t& hi) {
  int year = 0, month = 1, day = 1, hour = 0, minute = 0, second = 0, millis = 0;
  int64_t width_ms = 0;
  auto digits = [&](size_t at, size_t count, int& out) {
    if (text.size() < at + count) return false;
    out = 0;
    for (size_t i = at; i < at + count; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      out = out * 10 + (text[i] - '0');
    }
    return true;
  };
  if (!digits(0, 4, year)) return false;
  if (text.size() == 4) {
    width_ms = -1;  // a year: to the next year
  } else if (text.size() == 7 && text[4] == '-' && digits(5, 2, month)) {
    width_ms = -2;  // a month
  } else if (text.size() == 10 && text[4] == '-' && text[7] == '-' && digits(5, 2, month) && digits(8, 2, day)) {
    width_ms = 86400000;
  } else if (text.size() >= 20 && text[4] == '-' && text[7] == '-' && text[10] == 'T' && digits(5, 2, month) &&
             digits(8, 2, day) && digits(11, 2, hour) && digits(14, 2, minute) && digits(17, 2, second) &&
             text.back() == 'Z') {
    width_ms = 1000;
    if (text.size() > 20 && text[19] == '.') {
      const std::string_view fraction = text.substr(20, text.size() - 21);
      if (fraction.empty() || fraction.size() > 3 || !digits(20, fraction.size(), millis)) return false;
      for (size_t i = fraction.size(); i < 3; ++i) millis *= 10;
      width_ms = 1;
    } else if (text.size() != 20) {
      return false;
    }
  } else {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return false;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  lo = static_cast<int64_t>(timegm(&tm)) * 1000 + millis;
  if (width_ms > 0) {
    hi = lo + width_ms;
  } else {
    if (width_ms == -1) tm.tm_year += 1;
    else tm.tm_mon += 1;
    hi = static_cast<int64_t>(timegm(&tm)) * 1000;
  }
  return true;
}

}  // namespace

AuditSearchAnswer searchAudit(Store& store, const std::vector<std::pair<std::string, std::string>>& parameters,
                              const std::string& base_url) {
  AuditQuery query;
  for (const auto& [name, value] : parameters) {
    if (name == "date") {
      std::string_view text = value;
      std::string prefix = "eq";
      if (text.size() > 2 && std::isalpha(static_cast<unsigned char>(text[0]))) {
        prefix = std::string(text.substr(0, 2));
        text = text.substr(2);
      }
      int64_t lo = 0, hi = 0;
      if (!instantRange(text, lo, hi)) return {400, "date '" + value + "' is not a FHIR date or instant"};
      auto after = [&](int64_t ms) { query.from_ms = std::max(query.from_ms, ms); };
      auto before = [&](int64_t ms) { query.to_ms = query.to_ms == 0 ? ms : std::min(query.to_ms, ms); };
      if (prefix == "eq") {
        after(lo);
        before(hi);
      } else if (prefix == "ge") {
        after(lo);
      } else if (prefix == "gt") {
        after(hi);
      } else if (prefix == "lt") {
        before(lo);
      } else if (prefix == "le") {
        before(hi);
      } else {
        return {400, "date prefix '" + prefix + "' is not supported (eq, ge, gt, le, lt)"};
      }
    } else if (name == "agent") {
      query.agent = value;
    } else if (name == "entity") {
      // A full URL names the same resource as its last two segments.
      std::string reference = value;
      const size_t last = reference.rfind('/');
      if (last != std::string::npos && last > 0) {
        const size_t type_start = reference.rfind('/', last - 1);
        if (type_start != std::string::npos) reference = reference.substr(type_start + 1);
      }
      query.entity = reference;
    } else if (name == "subtype") {
      const size_t bar = value.find('|');
      query.subtype = bar == std::string::npos ? value : value.substr(bar + 1);
    } else if (name == "_count") {
      if (value.empty() || value.size() > 4 || value.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(value) < 1 || std::stoi(value) > 1000) {
        return {400, "_count must be an integer from 1 to 1000"};
      }
      query.count = static_cast<size_t>(std::stoi(value));
    } else {
      return {400, "GET /fhir/AuditEvent has no parameter '" + name + "' (date, agent, entity, subtype, _count)"};
    }
  }
  auto rows = store.listAudit(query);
  if (!rows.ok()) return {503, rows.message()};
  std::string out = "{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":" + std::to_string(rows->size()) +
                    ",\"entry\":[";
  bool first = true;
  for (const AuditRecord& row : *rows) {
    if (!first) out += ",";
    first = false;
    out += "{\"fullUrl\":" + quoted(base_url + "/AuditEvent/" + std::to_string(row.id)) + ",\"resource\":" +
           AuditLog::withId(row.json, row.id) + ",\"search\":{\"mode\":\"match\"}}";
  }
  return {200, out + "]}"};
}

}  // namespace fhir::gateway::auth
