#include "fetch/transfer_manager.h"

#include <chrono>

namespace imagefs::fetch {

TransferManager::~TransferManager() {
  std::vector<std::shared_ptr<Transfer>> all;
  {
    std::lock_guard lock(mu_);
    shutting_down_ = true;
    for (auto& t : threads_) t->cancelled_ = true;
    all.swap(threads_);
  }
  slot_cv_.notify_all();
  for (auto& t : all) {
    if (t->thread_.joinable()) t->thread_.join();
  }
}

void TransferManager::ReapLocked() {
  for (auto it = threads_.begin(); it != threads_.end();) {
    if ((*it)->finished_.load()) {
      (*it)->thread_.join();
      it = threads_.erase(it);
    } else {
      ++it;
    }
  }
}

std::shared_ptr<Transfer> TransferManager::Join(const std::string& key, uint64_t total, Work work,
                                                bool slotted) {
  std::lock_guard lock(mu_);
  ReapLocked();
  if (auto it = running_.find(key); it != running_.end() && !it->second->cancelled_.load()) {
    ++it->second->waiters_;
    return it->second;
  }
  std::shared_ptr<Transfer> t(new Transfer(key, total));
  t->waiters_ = 1;
  std::promise<Status> promise;
  t->result_ = promise.get_future().share();
  running_[key] = t;
  threads_.push_back(t);
  t->thread_ =
      std::thread([this, t, work = std::move(work), promise = std::move(promise),
                   slotted]() mutable { Run(t, std::move(work), std::move(promise), slotted); });
  return t;
}

void TransferManager::Run(const std::shared_ptr<Transfer>& t, Work work,
                          std::promise<Status> promise, bool slotted) {
  Status result;
  {
    std::unique_lock lock(mu_);
    if (slotted) {
      slot_cv_.wait(lock, [&] { return slots_ > 0 || shutting_down_ || t->cancelled_.load(); });
    }
    if ((slots_ > 0 || !slotted) && !shutting_down_ && !t->cancelled_.load()) {
      if (slotted) --slots_;
      lock.unlock();
      try {
        result = work(*t);
      } catch (const std::exception& e) {
        result = Fail(Code::kIo, "transfer " + t->key_ + ": " + e.what());
      }
      lock.lock();
      if (slotted) ++slots_;
    } else {
      result = Fail(Code::kCancelled, "transfer " + t->key_ + ": cancelled");
    }
    if (auto it = running_.find(t->key_); it != running_.end() && it->second == t)
      running_.erase(it);
  }
  slot_cv_.notify_one();
  t->phase_ = result ? Transfer::kComplete : Transfer::kFailed;
  promise.set_value(std::move(result));
  t->finished_ = true;
}

void TransferManager::Leave(const std::shared_ptr<Transfer>& t) {
  bool cancel = false;
  {
    std::lock_guard lock(mu_);
    cancel = --t->waiters_ == 0 && !t->finished_.load();
    if (cancel) {
      t->cancelled_ = true;
      if (auto it = running_.find(t->key_); it != running_.end() && it->second == t)
        running_.erase(it);
    }
  }
  if (cancel) slot_cv_.notify_all();
}

Status TransferManager::Wait(const std::shared_ptr<Transfer>& t, const std::atomic<bool>* cancel) {
  while (t->result_.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
    if (cancel != nullptr && cancel->load()) {
      Leave(t);
      return Fail(Code::kCancelled, "transfer " + t->key_ + ": cancelled");
    }
  }
  {
    std::lock_guard lock(mu_);
    --t->waiters_;
  }
  return t->result_.get();
}

std::vector<std::shared_ptr<Transfer>> TransferManager::Running() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Transfer>> out;
  for (const auto& [key, t] : running_) out.push_back(t);
  return out;
}

}  // namespace imagefs::fetch
