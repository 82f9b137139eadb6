{{- define "drkit.fullname" -}}
{{- printf "%s-drkit" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "drkit.labels" -}}
app.kubernetes.io/name: drkit
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "drkit.selector" -}}
app.kubernetes.io/name: drkit
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "drkit.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- if .Values.apiTokens -}}
{{- $_ := set $cfg.drd "api" (dict "tokens_file" "/etc/drkit/tokens/tokens") -}}
{{- end -}}
{{- $_ := set $cfg.drd "state_dir" "/var/lib/drkit" -}}
{{- if gt (int .Values.replicaCount) 1 -}}
{{- $_ := set $cfg.drd "ha" true -}}
{{- end -}}
{{ toYaml $cfg }}
{{- end -}}
