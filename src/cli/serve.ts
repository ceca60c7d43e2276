// `mf serve [runs/] [--port 8080] [--host 127.0.0.1]`: a local, read-only dashboard of the runs folder: the run
// list (live while runs write), each run's curves, config, metrics and confusion matrix, runs overlaid, the thesis
// tables as `mf table` prints them, and "try the model": a checkpoint run in the page on the browser's WebGPU.
import { ConfigError, MfError } from '../errors.ts';
import { createServer } from '../serve/server.ts';

export interface ServeFlags {
  port: string;
  host: string;
}

export async function serveCommand(runs: string, flags: ServeFlags): Promise<void> {
  const port = Number(flags.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`--port ${flags.port}: give a port number 0-65535`);
  const app = await createServer({ runs });
  let address: string;
  try {
    address = await app.listen({ port, host: flags.host });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new MfError(`port ${port} on ${flags.host} is in use`, 'pick another with --port');
    throw new MfError(`cannot listen on ${flags.host}:${port}: ${(e as Error).message}`, 'check --host and --port');
  }
  // The first line names the address, so that a script (or a test) can read the port chosen for --port 0.
  console.log(`mf serve: ${address}/ (runs: ${runs}; Ctrl-C stops)`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      void app.close().then(() => resolve());
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
