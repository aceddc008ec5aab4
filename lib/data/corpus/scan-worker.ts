// scan-worker.ts: the worker thread of scanFiles (scan.ts): scans each file it is sent and answers with the
// result, or the error; progress on the way.
import { parentPort } from 'node:worker_threads';
import { scanFile, serializeError, type ScanFileTask, type ScanWorkerMessage } from './scan';

const port = parentPort!;
const post = (m: ScanWorkerMessage) => port.postMessage(m);
let lastProgress = 0;

port.on('message', (task: ScanFileTask) => {
  scanFile(task, (progress) => {
    const now = Date.now();
    if (!progress.done && now - lastProgress < 100) return;
    lastProgress = now;
    post({ kind: 'progress', progress });
  }).then(
    (result) => post({ kind: 'done', result }),
    (e: unknown) => post({ kind: 'error', error: serializeError(e) }),
  );
});
