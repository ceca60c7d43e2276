// Preloaded (node --require) into each `mf run` that `mf sweep` or `mf worker` starts. If that parent dies
// (SIGKILL, a lost machine) the IPC channel closes and the run ends at once, as if killed with it: otherwise an
// orphan would keep training in the run folder while the queue hands the run to another worker. The channel is
// unref'd so that it never keeps a finished run alive.
if (process.channel) {
  process.channel.unref();
  process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
}
