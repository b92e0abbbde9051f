"""An agent's tools: MCP servers (podium.agent.tools.mcp), the set an agent offers its model (toolbox), how the
model asks for a call (calling) and the bounded loop of the llm backend (loop)."""
