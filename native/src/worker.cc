// worker.cc: the native worker thread. Async ops are queued here and run one at a time, in call order, off
// the JS thread; each completion is handed back to the JS thread through a thread-safe function, which
// unpins the op's tensors and settles its Promise. The thread-safe function is referenced only while work is
// pending, so an idle addon never keeps the process alive.
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "cpu.h"
#include "op.h"

namespace pt {

struct Worker;

namespace {

struct Job {
  Kernel kernel;
  Napi::Promise::Deferred deferred;
  std::vector<std::shared_ptr<Storage>> pins;
  OpResult result;
  bool failed = false;
  ErrorKind kind = ErrorKind::Engine;
  std::string message;
  explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

}  // namespace

struct Worker {
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job*> queue;
  bool stopping = false;
  Napi::ThreadSafeFunction tsfn;
  int pending = 0;  // JS thread only
  Napi::Env env;
  explicit Worker(Napi::Env e) : env(e) {}
};

namespace {

void Complete(Napi::Env env, Napi::Function, Worker* w, Job* job) {
  for (auto& s : job->pins) {
    s->pins--;
    s->ReleaseIfUnused();
  }
  if (env != nullptr) {
    if (job->failed) job->deferred.Reject(MakeJsError(env, PtError(job->kind, job->message)).Value());
    else job->deferred.Resolve(ResultToJs(env, job->result));
  }
  delete job;
  if (--w->pending == 0 && env != nullptr) w->tsfn.Unref(env);
}

void Loop(Worker* w) {
  SetKernelFpMode();  // this thread runs nothing but kernels
  for (;;) {
    Job* job;
    {
      std::unique_lock<std::mutex> lock(w->mu);
      w->cv.wait(lock, [&] { return w->stopping || !w->queue.empty(); });
      if (w->stopping) return;
      job = w->queue.front();
      w->queue.pop_front();
    }
    try {
      ApplyThreads();
      job->result = job->kernel();
    } catch (const PtError& e) {
      job->failed = true;
      job->kind = e.kind;
      job->message = e.what();
    } catch (const std::exception& e) {
      job->failed = true;
      job->message = e.what();
    }
    job->kernel = nullptr;  // drop captured tensors on this thread; storage stays pinned until Complete
    auto cb = [w](Napi::Env env, Napi::Function fn, Job* j) { Complete(env, fn, w, j); };
    if (w->tsfn.BlockingCall(job, cb) != napi_ok) {
      delete job;  // the environment is shutting down
    }
  }
}

}  // namespace

void StartWorker(Napi::Env env) {
  auto* w = new Worker(env);
  Napi::Function noop = Napi::Function::New(env, [](const Napi::CallbackInfo&) {});
  w->tsfn = Napi::ThreadSafeFunction::New(env, noop, "pajama-train native worker", 0, 1);
  w->tsfn.Unref(env);
  w->thread = std::thread(Loop, w);
  State(env).worker = w;
  env.AddCleanupHook([w]() {
    {
      std::lock_guard<std::mutex> lock(w->mu);
      w->stopping = true;
    }
    w->cv.notify_all();
    if (w->thread.joinable()) w->thread.join();
    w->tsfn.Abort();
    for (Job* j : w->queue) delete j;
    w->queue.clear();
    delete w;
  });
}

Napi::Value EnqueueKernel(Napi::Env env, Kernel kernel, std::vector<std::shared_ptr<Storage>> pins) {
  Worker* w = State(env).worker;
  PT_CHECK_ENGINE(w != nullptr, "native worker is not running");
  Job* job = new Job(env);
  job->kernel = std::move(kernel);
  job->pins = std::move(pins);
  for (auto& s : job->pins) s->pins++;
  if (w->pending++ == 0) w->tsfn.Ref(env);
  Napi::Promise promise = job->deferred.Promise();
  {
    std::lock_guard<std::mutex> lock(w->mu);
    w->queue.push_back(job);
  }
  w->cv.notify_one();
  return promise;
}

}  // namespace pt
