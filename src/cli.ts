// placeholder, replaced by the CLI
export {};
