{{/*
The sidecar's config file (CONFIG_FILE) and the ConfigMap that holds it.
*/}}

{{/*
The config file's YAML, rendered from .Values.tokenProxy.config. Each upstream listed without a
privateKeyFile gets the mounted Secret's key file, without a caFile the mounted CA (if any), and
without clientCertFile/clientKeyFile the mounted client certificate (if any).
Empty when .Values.tokenProxy.config is empty.
*/}}
{{- define "logicnets-token-proxy.configFile" -}}
{{- if .Values.tokenProxy.config -}}
{{- $config := deepCopy .Values.tokenProxy.config -}}
{{- $keyFile := include "logicnets-token-proxy.keyFile" . -}}
{{- $caFile := include "logicnets-token-proxy.caFile" . -}}
{{- $clientCertFile := include "logicnets-token-proxy.clientCertFile" . -}}
{{- range $entry := (get $config "upstreams" | default list) -}}
{{- if not (hasKey $entry "privateKeyFile") -}}
{{- $_ := set $entry "privateKeyFile" $keyFile -}}
{{- end -}}
{{- if and $caFile (not (hasKey $entry "caFile")) -}}
{{- $_ := set $entry "caFile" $caFile -}}
{{- end -}}
{{- if and $clientCertFile (not (hasKey $entry "clientCertFile")) (not (hasKey $entry "clientKeyFile")) -}}
{{- $_ := set $entry "clientCertFile" $clientCertFile -}}
{{- $_ := set $entry "clientKeyFile" (include "logicnets-token-proxy.clientKeyFile" $) -}}
{{- end -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}
{{- end -}}

{{/*
The ConfigMap manifest with config.yaml, or nothing when .Values.tokenProxy.config is empty.
Put `{{ include "logicnets-token-proxy.configmap" . }}` in a template file of your chart.
*/}}
{{- define "logicnets-token-proxy.configmap" -}}
{{- if .Values.tokenProxy.config -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "logicnets-token-proxy.configMapName" . }}
  labels:
    {{- include "logicnets-token-proxy.labels" . | nindent 4 }}
data:
  config.yaml: |
    {{- include "logicnets-token-proxy.configFile" . | nindent 4 }}
{{- end -}}
{{- end -}}
