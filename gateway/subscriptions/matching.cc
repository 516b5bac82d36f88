// SPDX-License-Identifier: Apache-2.0
#include "gateway/subscriptions/matching.h"

#include <pthread.h>

#include <chrono>

namespace fhir::gateway {
namespace {

constexpr size_t kChangesPerPass = 64;  // change records matched and committed together
constexpr auto kPollInterval = std::chrono::milliseconds(200);  // changes from other processes

void addStrings(json::Value& object, std::string_view key, const std::set<std::string>& values,
                json::Allocator& allocator) {
  json::Value array(rapidjson::kArrayType);
  for (const std::string& value : values) array.PushBack(json::Value(value.data(), static_cast<rapidjson::SizeType>(value.size()), allocator), allocator);
  json::addMember(object, key, std::move(array), allocator);
}

json::Value factsJson(const EventFacts& facts, json::Allocator& allocator) {
  json::Value object(rapidjson::kObjectType);
  json::addString(object, "patient", facts.patient, allocator);
  addStrings(object, "payers", facts.payers, allocator);
  addStrings(object, "practices", facts.practices, allocator);
  addStrings(object, "codes", facts.codes, allocator);
  return object;
}

bool readStrings(const json::Value& object, const char* key, std::set<std::string>& out) {
  const json::Value* array = json::find(object, key);
  if (array == nullptr || !array->IsArray()) return false;
  for (const json::Value& value : array->GetArray()) {
    if (!value.IsString()) return false;
    out.insert(std::string(value.GetString(), value.GetStringLength()));
  }
  return true;
}

bool readFacts(const json::Value& object, EventFacts& facts) {
  if (!object.IsObject()) return false;
  facts.patient = std::string(json::getString(object, "patient").value_or(""));
  return readStrings(object, "payers", facts.payers) && readStrings(object, "practices", facts.practices) &&
         readStrings(object, "codes", facts.codes);
}

}  // namespace

std::string encodeChangeContext(const ChangeContext& context) {
  json::Document doc;
  doc.SetObject();
  auto& allocator = doc.GetAllocator();
  json::addMember(doc, "facts", factsJson(context.facts, allocator), allocator);
  json::Value claims(rapidjson::kObjectType);
  for (const auto& [claim_id, facts] : context.claim_facts) json::addMember(claims, claim_id, factsJson(facts, allocator), allocator);
  json::addMember(doc, "claims", std::move(claims), allocator);
  json::addMember(doc, "claimsNeedRoute", json::Value(context.claims_need_route), allocator);
  return json::serialize(doc);
}

std::optional<ChangeContext> decodeChangeContext(std::string_view text) {
  json::Document doc;
  json::ParseError error;
  if (!json::parse(text, doc, error) || !doc.IsObject()) return std::nullopt;
  ChangeContext context;
  const json::Value* facts = json::find(doc, "facts");
  const json::Value* claims = json::find(doc, "claims");
  const json::Value* need_route = json::find(doc, "claimsNeedRoute");
  if (facts == nullptr || !readFacts(*facts, context.facts) || claims == nullptr || !claims->IsObject() ||
      need_route == nullptr || !need_route->IsBool()) {
    return std::nullopt;
  }
  for (const auto& member : claims->GetObject()) {
    EventFacts claim;
    if (!readFacts(member.value, claim)) return std::nullopt;
    context.claim_facts.emplace(std::string(member.name.GetString(), member.name.GetStringLength()), std::move(claim));
  }
  context.claims_need_route = need_route->GetBool();
  return context;
}

Status matchChanges(const TopicCatalog& topics, const std::vector<Subscription>& subscriptions,
                    const ChangeContext& context, const std::vector<ResourceChangeRecord>& changes,
                    std::vector<OutboxWrite>& outbox, const OwnerVisibility* visibility) {
  std::vector<json::Document> currents(changes.size());
  std::vector<json::Document> previous(changes.size());
  std::vector<ResourceChange> parsed;
  for (size_t i = 0; i < changes.size(); ++i) {
    json::ParseError error;
    if (changes[i].current_json == nullptr || !json::parse(*changes[i].current_json, currents[i], error)) continue;
    ResourceChange change{changes[i].type, changes[i].id, nullptr, &currents[i]};
    if (!changes[i].previous_json.empty() && json::parse(changes[i].previous_json, previous[i], error)) {
      change.previous = &previous[i];
    }
    parsed.push_back(change);
  }
  for (const Subscription& subscription : subscriptions) {
    if (subscription.status != "active" && subscription.status != "error") continue;
    const Topic* topic = topics.find(subscription.topic);
    if (topic == nullptr) continue;
    for (const ResourceChange& change : parsed) {
      const EventFacts* focus_facts = &context.facts;
      if (change.type == "Claim" && context.claims_need_route) {
        auto found = context.claim_facts.find(change.id);
        if (found == context.claim_facts.end()) continue;
        focus_facts = &found->second;
      }
      if (!topics.fires(*topic, change) || !filtersMatch(subscription, *focus_facts)) continue;
      if (visibility != nullptr && *visibility) {
        // The owner's view of the focus (access.md): not seen, no notification of it; seen with
        // identifiers left out, those are left out of a full-resource payload too.
        const std::string text = json::serialize(*change.current);
        auto seen = (*visibility)(subscription.owner, change.type, change.id, text);
        if (!seen.ok()) return Error{seen.message()};
        if (!seen->has_value()) continue;
        if (**seen != text) {
          json::Document trimmed;
          json::ParseError error;
          if (!json::parse(**seen, trimmed, error)) continue;
          outbox.push_back(OutboxWrite{"subscription:" + subscription.id, "notification",
                                       notificationRecord(subscription.topic, change.type + "/" + change.id, {&trimmed})});
          break;
        }
      }
      outbox.push_back(OutboxWrite{"subscription:" + subscription.id, "notification",
                                   notificationRecord(subscription.topic, change.type + "/" + change.id, {change.current})});
      break;  // one notification per subscription and event
    }
  }
  return Status::Ok();
}

SubscriptionMatcher::SubscriptionMatcher(StorePtr store, TopicCatalogPtr topics, const SubscriptionRegistry* registry,
                                         std::function<void()> on_outbox)
    : store_(std::move(store)), topics_(std::move(topics)), registry_(registry), on_outbox_(std::move(on_outbox)) {}

SubscriptionMatcher::~SubscriptionMatcher() { stop(); }

void SubscriptionMatcher::start() {
  std::lock_guard lock(mutex_);
  running_ = true;
  thread_ = std::thread([this] { run(); });
  pthread_setname_np(thread_.native_handle(), "sub-matcher");
}

void SubscriptionMatcher::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_cv_.notify_all();
  done_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SubscriptionMatcher::wake() {
  {
    std::lock_guard lock(mutex_);
    woken_ = true;
  }
  wake_cv_.notify_all();
}

bool SubscriptionMatcher::catchUp(std::chrono::milliseconds timeout) {
  if (registry_ == nullptr || topics_ == nullptr || registry_->all().empty()) return true;
  std::unique_lock lock(mutex_);
  if (!running_ || stopping_) return false;
  const uint64_t wanted = ++requested_;
  woken_ = true;
  wake_cv_.notify_all();
  return done_cv_.wait_for(lock, timeout, [&] { return completed_ >= wanted || stopping_; }) && !stopping_;
}

Result<size_t> SubscriptionMatcher::runOnce() {
  size_t planned_rows = 0;
  for (;;) {
    auto cursor = store_->changeCursor(kConsumer);
    if (!cursor.ok()) return cursor.error();
    auto records = store_->changesAfter(*cursor, kChangesPerPass);
    if (!records.ok()) return records.error();
    if (records->empty()) return planned_rows;
    const std::vector<Subscription> live = registry_ != nullptr ? registry_->all() : std::vector<Subscription>{};
    std::vector<PlannedOutbox> planned;
    for (const ChangeRecord& record : *records) {
      auto context = decodeChangeContext(record.context);
      if (!context || topics_ == nullptr || live.empty()) continue;  // nothing can match
      std::vector<ResourceChangeRecord> changes;
      changes.reserve(record.resources.size());
      for (const ChangedResource& resource : record.resources) {
        changes.push_back(ResourceChangeRecord{resource.type, resource.id, resource.previous_json, &resource.current_json});
      }
      std::vector<OutboxWrite> rows;
      // A store failure reading what an owner may see: the pass fails, the cursor stays, and
      // these changes are matched again on the next one.
      Status matched = matchChanges(*topics_, live, *context, changes, rows, visibility_ ? &visibility_ : nullptr);
      if (!matched.ok()) return Error{matched.message()};
      for (OutboxWrite& row : rows) planned.push_back(PlannedOutbox{record.event_seq, std::move(row)});
    }
    const size_t count = planned.size();
    auto moved = store_->commitPlanned(kConsumer, *cursor, records->back().event_seq, std::move(planned));
    if (!moved.ok()) return moved.error();
    if (*moved) planned_rows += count;  // else another handle matched them: read the cursor again
  }
}

void SubscriptionMatcher::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    woken_ = false;
    const uint64_t pass = requested_;  // every catchUp up to this one began before this pass
    lock.unlock();
    auto planned = runOnce();
    if (planned.ok() && *planned > 0 && on_outbox_) on_outbox_();
    // A store error: the changes stay in the log and are matched on the next pass (and catchUp
    // callers wait for that one).
    lock.lock();
    if (planned.ok() && pass > completed_) {
      completed_ = pass;
      done_cv_.notify_all();
    }
    if (stopping_) break;
    if (!woken_) wake_cv_.wait_for(lock, kPollInterval, [&] { return stopping_ || woken_; });
  }
}

}  // namespace fhir::gateway
