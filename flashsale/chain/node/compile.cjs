// Compile contracts/FlashsaleDrop.sol with the pinned solc-js (no compiler
// download) into artifacts/FlashsaleDrop.json: ABI, bytecode and the settings
// that produced them. Run from this folder: `node compile.cjs` (npm run compile);
// `node compile.cjs --check` exits 1 when the committed artifact differs.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const CHAIN = path.resolve(__dirname, "..");
const SOURCE = "contracts/FlashsaleDrop.sol";
const NAME = "FlashsaleDrop";
const ARTIFACT = path.join(CHAIN, "artifacts", `${NAME}.json`);
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  // no metadata hash: the bytecode then depends on the source and settings alone
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
};

function findImport(importPath) {
  for (const base of [CHAIN, path.join(__dirname, "node_modules")]) {
    const file = path.join(base, importPath);
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `not found: ${importPath}` };
}

function compile() {
  const input = {
    language: "Solidity",
    sources: { [SOURCE]: { content: fs.readFileSync(path.join(CHAIN, SOURCE), "utf8") } },
    settings: SETTINGS,
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  if (errors.length) {
    for (const e of errors) console.error(e.formattedMessage);
    process.exit(2);
  }
  const contract = output.contracts[SOURCE][NAME];
  const artifact = {
    contractName: NAME,
    sourceName: SOURCE,
    compiler: `solc-js ${solc.version()}`,
    settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion, metadata: SETTINGS.metadata },
    abi: contract.abi,
    bytecode: "0x" + contract.evm.bytecode.object,
  };
  return JSON.stringify(artifact, null, 2) + "\n";
}

const text = compile();
if (process.argv.includes("--check")) {
  const committed = fs.existsSync(ARTIFACT) ? fs.readFileSync(ARTIFACT, "utf8") : "";
  if (committed !== text) {
    console.error(`${path.relative(CHAIN, ARTIFACT)} differs from a fresh compile`);
    process.exit(1);
  }
  console.log("artifact matches a fresh compile");
} else {
  fs.writeFileSync(ARTIFACT, text);
  console.log(`wrote ${path.relative(CHAIN, ARTIFACT)}`);
}
