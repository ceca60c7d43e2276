// esbuild bundles the page's CSS imports into app.css; to TypeScript they are modules without exports.
declare module '*.css';
